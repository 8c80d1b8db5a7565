'use strict';
// procwire-ipc: a client for procwire's JSON IPC server.
// `const IPCClient = require('procwire-ipc')` replaces `require('pixl-ipc/client')`.
const IPCClient = require('./lib/client');

module.exports = IPCClient;
module.exports.IPCClient = IPCClient;
module.exports.LineDecoder = require('./lib/lines').LineDecoder;
