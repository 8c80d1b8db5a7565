// Command procwire is the procwire daemon and its command-line client.
//
//	procwire serve [-c FILE] [--socket PATH]   run the daemon
//	procwire -t -c FILE                         check a configuration file
//	procwire call [--socket PATH] URI [JSON]   send one JSON IPC request
//	procwire stats [--socket PATH]             print the server's statistics
//
// Run `procwire --help` for the full list of commands.
package main
