package config

// CheckSection validates one section of a file that is not a service (the
// node's cluster.conf) against kws: unknown keywords with a suggestion,
// values by type, required keywords, defaults applied. It gives the same
// errors as a service file.
func CheckSection(path string, sec *Section, kws []Keyword) (map[string]string, Errors) {
	l := &loader{path: path, schema: &Schema{}}
	vals, _ := l.keywords(sec, kws, "["+sec.Name+"]", nil)
	return vals, l.errs
}
