package apikeys

// Format assembles a token from its parts, with a correct checksum.
var Format = format
