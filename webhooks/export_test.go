package webhooks

// CheckBearer reports whether an Authorization header carries secret.
func CheckBearer(secret, header string) bool { return newBearer(secret).check(header) }
