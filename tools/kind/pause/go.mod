module clb-testbed/kind/pause

go 1.24
