package main

import (
	"fmt"
	"net/http"
	"os"
	"os/user"
)

func main() {
	me, err := user.Current()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	greeting := os.Getenv("GREETING")
	port := os.Getenv("PORT")
	fmt.Printf("%s: serving on :%s as %s\n", greeting, port, me.Username)
	if len(os.Args) > 1 && os.Args[1] == "--once" {
		return
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, greeting)
	})
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
