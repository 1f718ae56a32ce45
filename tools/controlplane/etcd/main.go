// Command etcd is the upstream etcd server entry point, built from the Go module proxy.
//
// etcd's own main package cannot be `go install`ed (its go.mod has replace directives),
// so this module requires go.etcd.io/etcd/server/v3 and calls the same entry point
// that upstream server/main.go calls.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
