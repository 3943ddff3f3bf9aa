// Package rrdcli implements `mvstatsd rrd`: rrdtool's create, update,
// fetch, dump, restore, info, last and first commands, with rrdtool's
// argument syntax and output formats, over mvstack's RRD files (package
// statsd/rrd). Scripts written for rrdtool work unchanged on our files.
//
// Times take rrdtool's forms that scripts use most: seconds since the
// epoch, N or now, and offsets such as -1d, now-2h, end-30min, s+1w.
package rrdcli
