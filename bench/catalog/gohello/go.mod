module agora.local/bench/gohello

go 1.19
