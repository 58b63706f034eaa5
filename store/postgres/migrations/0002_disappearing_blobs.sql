-- The blobs of a disappearing message are tied to it: the message whose
-- sender is the blob's uploader and whose client_msg_id is the blob's (see
-- ExpireBlobs). PurgeExpired deletes them once it is gone, and finds what
-- has expired through the partial indexes below, which ordinary messages
-- and blobs never enter.
ALTER TABLE blobs ADD COLUMN client_msg_id TEXT;
CREATE INDEX blobs_disappearing ON blobs (client_msg_id) WHERE client_msg_id IS NOT NULL;
CREATE INDEX blobs_expiring ON blobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX messages_expiring ON messages (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX direct_expiring ON direct (expires_at) WHERE expires_at IS NOT NULL;
