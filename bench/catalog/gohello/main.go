// SPDX-License-Identifier: MIT
// Peer for bench/catalog: a Go standard-library net/http server that answers
// the catalog's own response bodies from memory, so the catalog's cost can be
// compared with "HTTP + the same bytes, nothing else".
//
//	gohello -addr 127.0.0.1:PORT -id <product id> -item item.json -list list.json
//
// GET /v1/products        -> list.json (any query string)
// GET /v1/products/<id>   -> item.json
// Anything else           -> 404.
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	id := flag.String("id", "", "product id served at /v1/products/<id>")
	itemPath := flag.String("item", "", "body file for GET /v1/products/<id>")
	listPath := flag.String("list", "", "body file for GET /v1/products")
	flag.Parse()

	item, err := os.ReadFile(*itemPath)
	if err != nil {
		log.Fatal(err)
	}
	list, err := os.ReadFile(*listPath)
	if err != nil {
		log.Fatal(err)
	}
	if *id == "" {
		log.Fatal("-id is required")
	}

	serve := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.WriteHeader(http.StatusMethodNotAllowed)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/products", serve(list))
	mux.HandleFunc("/v1/products/"+*id, serve(item))

	log.Fatal(http.ListenAndServe(*addr, mux))
}
