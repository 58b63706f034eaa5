package client

// SetBeforeCallInvite makes StartCall run f between catching up and
// sending its invite, for tests of two members calling at once.
func (c *Client) SetBeforeCallInvite(f func()) { c.beforeCallInvite = f }
