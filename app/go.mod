module example.invalid/mcp-sample-app

go 1.19
