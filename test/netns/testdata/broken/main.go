// Command broken does not compile, on purpose: the harness's tests check
// that BuildBinaries reports which package failed and why.
package main

func main() {
	notDefinedAnywhere()
}
