package config

import "fmt"

func sprintAll(v any) string { return fmt.Sprintf("%v %+v %#v %s", v, v, v, v) }
