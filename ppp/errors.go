package ppp

import "errors"

// ErrMalformed wraps every decoding error.
var ErrMalformed = errors.New("malformed PPP data")
