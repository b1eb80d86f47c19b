// Command protoeq is a check of .ci/run: it decodes two protojson files as the message its first
// argument names (ScoreResponse) and exits 0 when they are equal (proto.Equal), 1 when not.
//
//	go run ./.ci/protoeq ScoreResponse a.json b.json
package main

import (
	"fmt"
	"os"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

func main() {
	if len(os.Args) != 4 || os.Args[1] != "ScoreResponse" {
		fmt.Fprintln(os.Stderr, "usage: protoeq ScoreResponse A.json B.json")
		os.Exit(2)
	}
	var msgs [2]plumbv1.ScoreResponse
	for i, name := range os.Args[2:] {
		b, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := protojson.Unmarshal(b, &msgs[i]); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			os.Exit(2)
		}
	}
	if !proto.Equal(&msgs[0], &msgs[1]) {
		fmt.Fprintf(os.Stderr, "%s and %s differ:\n%v\n%v\n", os.Args[2], os.Args[3], &msgs[0], &msgs[1])
		os.Exit(1)
	}
	fmt.Printf("%s and %s: the same ScoreResponse\n", os.Args[2], os.Args[3])
}
