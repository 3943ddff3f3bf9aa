package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// print writes v as key=value lines (objects of a list separated by a blank
// line) or, with --json, as JSON; --filter keeps the named keys (a key also
// keeps everything under it: --filter=monitoring).
func print(c *cli.Context, w io.Writer, v any) error {
	var keep []string
	if f := c.String("filter"); f != "" {
		for _, k := range strings.Split(f, ",") {
			if k = strings.TrimSpace(k); k != "" {
				keep = append(keep, k)
			}
		}
	}
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(filterJSON(v, keep))
	}
	items, isList := v.([]any)
	if !isList {
		items = []any{v}
	}
	for i, it := range items {
		if i > 0 {
			fmt.Fprintln(w)
		}
		var lines []string
		flatten("", it, &lines)
		for _, l := range lines {
			k, _, _ := strings.Cut(l, "=")
			if kept(k, keep) {
				fmt.Fprintln(w, l)
			}
		}
	}
	return nil
}

func kept(key string, keep []string) bool {
	if len(keep) == 0 {
		return true
	}
	for _, k := range keep {
		if key == k || strings.HasPrefix(key, k+".") {
			return true
		}
	}
	return false
}

func filterJSON(v any, keep []string) any {
	if len(keep) == 0 {
		return v
	}
	switch t := v.(type) {
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = filterJSON(x, keep)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, x := range t {
			if kept(k, keep) {
				out[k] = x
			}
		}
		return out
	}
	return v
}

// flatten turns nested JSON into key=value lines: objects by dotted keys,
// lists of scalars joined by commas (ids=1,2,3), lists of objects by index.
func flatten(prefix string, v any, out *[]string) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			flatten(join(k), t[k], out)
		}
	case []any:
		scalars := true
		for _, x := range t {
			switch x.(type) {
			case map[string]any, []any:
				scalars = false
			}
		}
		if scalars {
			parts := make([]string, len(t))
			for i, x := range t {
				parts[i] = scalar(x)
			}
			*out = append(*out, prefix+"="+strings.Join(parts, ","))
			return
		}
		for i, x := range t {
			flatten(join(fmt.Sprint(i)), x, out)
		}
	default:
		*out = append(*out, prefix+"="+scalar(t))
	}
}

func scalar(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case float64:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%f", t), "0"), ".")
	}
	return fmt.Sprint(v)
}
