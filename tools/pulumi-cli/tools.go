//go:build tools

// Package tools makes the CLI's main package part of this module (see go.mod).
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
