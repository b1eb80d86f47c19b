module github.com/plumbhq/plumb

go 1.26.8

require (
	github.com/google/go-cmp v0.6.0
	golang.org/x/text v0.23.0
	gonum.org/v1/gonum v0.17.0
)

require golang.org/x/tools v0.52.0 // indirect
