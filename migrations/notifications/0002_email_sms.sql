-- notifications: email and SMS channels beside webhooks. `url` is a webhook's URL, an email
-- channel's SMTP relay (`smtp://…`, one of the pack's grants.smtp) or an SMS channel's
-- provider endpoint; `secret` is a webhook's signing secret, an SMS channel's provider auth
-- token (write-only too), and empty for email (the relay's credentials stay in the host).
-- to_address: the email recipient or the SMS number; from_address: the From mailbox or the
-- sender number; reply_to: email only; account_sid: the SMS provider account.
ALTER TABLE notification_channels ADD COLUMN to_address TEXT;
ALTER TABLE notification_channels ADD COLUMN from_address TEXT;
ALTER TABLE notification_channels ADD COLUMN reply_to TEXT;
ALTER TABLE notification_channels ADD COLUMN account_sid TEXT;
