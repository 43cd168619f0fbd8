// Typed errors of the RemoteXPC layers. Each carries a stable `code` so a
// caller can tell a malformed peer (close that connection) from a bug.

export type XpcErrorCode =
  | 'EXPCTRUNCATED' // the bytes end inside an object or message
  | 'EXPCMAGIC' // wrapper or payload magic / version is wrong
  | 'EXPCTYPE' // an unknown or unsupported object type
  | 'EXPCDEPTH' // arrays/dictionaries nested deeper than the limit
  | 'EXPCLENGTH' // a length field past the end or over a limit
  | 'EXPCVALUE' // a value that cannot be encoded (or a top level that is not a dictionary)
  | 'EXPCTRAILING'; // bytes left over after the top-level object

export class XpcError extends Error {
  constructor(
    readonly code: XpcErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'XpcError';
  }
}

export type Http2ErrorCode =
  | 'EH2PREFACE' // the connection did not start with the HTTP/2 preface
  | 'EH2FRAME' // a frame whose length or fields break the rules
  | 'EH2PROTOCOL' // a frame the peer may not send now (e.g. DATA on an unopened stream)
  | 'EH2GOAWAY' // the peer sent GOAWAY
  | 'EH2RESET' // the peer reset a stream
  | 'EH2CLOSED'; // the connection closed before the exchange finished

export class Http2Error extends Error {
  constructor(
    readonly code: Http2ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'Http2Error';
  }
}
