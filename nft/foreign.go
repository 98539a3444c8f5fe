package nft

import "time"

// ForeignChange is news that another writer may have changed our table: a change seen in the kernel's
// notifications, or notifications lost, after which only reading the table back can tell.
type ForeignChange struct {
	At     time.Time // when the news came; the earliest of merged news
	Lost   bool      // notifications were lost; no change was seen
	Detail string    // what changed and who changed it, or why notifications were lost
}

// Merge combines two pieces of news not acted on yet: a change seen outweighs notifications lost.
func (c ForeignChange) Merge(o ForeignChange) ForeignChange {
	out := c
	if c.Lost && !o.Lost {
		out = o
	}
	out.Lost = c.Lost && o.Lost
	if o.At.Before(c.At) {
		out.At = o.At
	} else {
		out.At = c.At
	}
	return out
}
