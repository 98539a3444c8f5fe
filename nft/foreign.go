package nft

import "time"

// ForeignChange is news that another writer may have changed our table: a change seen in the kernel's
// notifications, or notifications lost, after which only reading the table back can tell.
type ForeignChange struct {
	At     time.Time // when the news came; the latest of merged news
	Lost   bool      // notifications were lost; no change was seen
	Detail string    // what changed and who changed it, or why notifications were lost
}

// Merge combines two pieces of news not acted on yet: a change seen outweighs notifications lost. The
// merged news keeps the later time: news older than a full replacement of the table is moot (the
// replacement undid what it tells of), and merged news must not look older than its newest part.
func (c ForeignChange) Merge(o ForeignChange) ForeignChange {
	out := c
	if c.Lost && !o.Lost {
		out = o
	}
	out.Lost = c.Lost && o.Lost
	out.At = c.At
	if o.At.After(c.At) {
		out.At = o.At
	}
	return out
}
