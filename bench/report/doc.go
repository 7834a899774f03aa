// Package report holds the results of a bench run and turns them into what people and
// machines read: bench/RESULTS.md (machine, command, method, one set of tables per link
// profile, the physical bound, the flash comparison, the recommended chunk size per profile,
// device RAM and the concurrency sweep), charts as PNG and SVG drawn with gonum/plot, and
// JSON of every cell and sample. It is the last step of bench/: the harness fills a Results,
// report renders it.
package report
