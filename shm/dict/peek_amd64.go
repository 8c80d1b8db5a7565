package dict

// peekReads enables lock-free reads (see peek): amd64 keeps loads in order
// with loads and stores with stores.
const peekReads = true
