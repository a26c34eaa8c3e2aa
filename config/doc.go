// Package config turns a config file, environment variables and secret files into one validated Config.
package config
