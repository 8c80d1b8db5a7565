module github.com/procwire/procwire

go 1.26
