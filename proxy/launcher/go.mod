module mcp-proxy-launch

go 1.22
