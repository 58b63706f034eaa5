package mls

// Applications keep state of their own in the GroupContext with extension
// types of the private-use range (RFC 9420 §17.3): every member agrees on
// it, and only a commit changes it. Creating a group with a
// required_capabilities extension that lists the type keeps clients that
// do not understand it out of the group (§11.1); an application checks a
// new value before merging the commit that brings it.

// Extensions returns the GroupContext extensions of the epoch the commit
// starts: those of a GroupContextExtensions proposal it holds, or else the
// current ones. An application checks its own extensions there before
// [Group.Merge], and discards a commit whose values it does not accept.
func (sc *StagedCommit) Extensions() Extensions { return sc.ctx.Extensions }

// Extension encodes r as a required_capabilities extension (§11.1), for
// CreateGroupOptions.Extensions or CommitOptions.Extensions.
func (r *RequiredCapabilities) Extension() Extension {
	return Extension{Type: ExtRequiredCapabilities, Data: mustEncode(r)}
}
