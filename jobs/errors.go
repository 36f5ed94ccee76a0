package jobs

import (
	"errors"

	"github.com/tracevault/tracevault/snapshot"
)

// ErrUsage marks an error in what was asked rather than in what happened: an option missing,
// two that contradict, or one the configuration cannot serve. A command exits 2 for it, as for
// a bad flag. It adds nothing to the error's message.
var ErrUsage = errors.New("usage error")

// usageError is an error marked ErrUsage, its message unchanged.
type usageError struct{ error }

func (e usageError) Is(target error) bool { return target == ErrUsage }

func (e usageError) Unwrap() error { return e.error }

// ErrNoJob means an action named a job the configuration does not have; the API answers 404.
var ErrNoJob = errors.New("no such job")

// ErrPartial means a backup recorded its snapshot as partial: a source failed, the others'
// data is kept.
var ErrPartial = snapshot.ErrPartial
