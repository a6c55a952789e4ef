//! Channels: where messages go. A `webhook` channel has a URL, which must be one the pack's
//! `grants.outbound` allows (checked when it is given: 422 naming `url`), and a signing
//! secret (`whsec_…`), given or generated: write-only — stored to sign with, answered once
//! when the pack made it, never listed, logged or audited. Rotating the secret keeps the old
//! one signing for `rotation_grace_seconds`. An `email` channel names an SMTP relay of
//! `grants.smtp` and its addresses; an `sms` channel its numbers, the provider's account and
//! endpoint, and an auth token that is write-only like a secret ([`crate::kinds`]).

use valhalla_sdk::prelude::*;

mod input;

use input::{Create, Patch, Rotate};

use crate::kinds::{self, Fields, KINDS};
use crate::settings::Settings;
use crate::signing;

/// A channel as answered: no secret.
#[derive(Serialize, Deserialize, JsonSchema, Clone)]
pub(crate) struct Channel {
    pub id: String,
    /// unique
    pub name: String,
    /// `webhook`, `email` or `sms`
    pub kind: String,
    /// the webhook's URL, the email channel's SMTP relay, the SMS provider's endpoint
    pub url: String,
    /// email: the recipient's mailbox; sms: the recipient's number
    pub to: Option<String>,
    /// email: the `From` mailbox; sms: the sender's number
    pub from: Option<String>,
    /// email: the `Reply-To` mailbox
    pub reply_to: Option<String>,
    /// sms: the provider's account (its auth token is never answered)
    pub account_sid: Option<String>,
    pub description: Option<String>,
    /// a disabled channel takes no new messages and delivers none
    pub enabled: bool,
    /// why the pack turned it off (a receiver answered 410 Gone)
    pub disabled_reason: Option<String>,
    /// when the secret was last rotated
    pub secret_rotated_at: Option<String>,
    /// until when the secret before the last rotation still signs
    pub previous_secret_expires_at: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl db::Record for Channel {
    const TABLE: &'static str = "notification_channels";
    const RENAMED: &'static [(&'static str, &'static str)] =
        &[("to", "to_address"), ("from", "from_address")];
    const WHAT: &'static str = "channel";
}

/// A channel as created or rotated: the secret, once, when the pack generated it.
#[derive(Serialize, JsonSchema)]
pub(crate) struct WithSecret {
    #[serde(flatten)]
    channel: Channel,
    /// the signing secret, shown this once (absent when the caller gave it)
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

/// 409 when another channel is already called `name`.
fn name_taken(name: &str, except_id: &str) -> Result<(), Problem> {
    let sql = "SELECT COUNT(*) FROM notification_channels WHERE name = $1 AND id <> $2";
    if db::query_scalar(sql, params![name, except_id])? > 0 {
        return Err(Problem::conflict(format!("a channel named `{name}` already exists")));
    }
    Ok(())
}

fn target(id: &str) -> String {
    format!("notification_channels/{id}")
}

/// The channel whose id or name is `reference`.
pub(crate) fn find(reference: &str) -> Result<Option<Channel>, Problem> {
    let rest = "WHERE id = $1 OR name = $1 ORDER BY created_at LIMIT 1";
    Ok(db::select::<Channel>(rest, params![reference])?.into_iter().next())
}

pub(crate) fn create(
    Valid(body): Valid<Create>,
    Actor(actor): Actor,
) -> Result<Created<WithSecret>, Problem> {
    let fields = Fields {
        url: body.url,
        to: body.to,
        from: body.from,
        reply_to: body.reply_to,
        account_sid: body.account_sid,
        secret: body.secret,
        auth_token: body.auth_token,
    };
    let f = kinds::resolve(&body.kind, fields, &Settings::load(), true, true)?;
    name_taken(&body.name, "")?;
    let webhook = body.kind == "webhook";
    let generated = (webhook && f.secret.is_none()).then(signing::generate_secret);
    let secret = f.secret.or_else(|| generated.clone()).unwrap_or_default();
    let now = clock::now_rfc3339();
    let id = clock::new_id();
    let insert = "INSERT INTO notification_channels (id, name, kind, url, description, enabled, \
                  secret, created_by, created_at, updated_at, to_address, from_address, \
                  reply_to, account_sid) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13)";
    let params = params![
        id.as_str(),
        body.name,
        body.kind,
        f.url,
        body.description,
        body.enabled,
        secret,
        actor,
        now,
        f.to,
        f.from,
        f.reply_to,
        f.account_sid
    ];
    db::execute(insert, params)?;
    let channel: Channel = db::get("id", &id)?;
    log::audit_created("channel.create", &target(&id), &channel);
    Ok(Created(WithSecret { channel, secret: generated }))
}

/// The list filters: `enabled`, `kind`.
#[derive(Deserialize, Validate)]
pub(crate) struct ChannelFilter {
    enabled: Option<bool>,
    #[validate(one_of = KINDS)]
    kind: Option<String>,
}

pub(crate) fn list(
    page: Page,
    ValidQuery(q): ValidQuery<ChannelFilter>,
) -> Result<Json<db::List<Channel>>, Problem> {
    let mut filter = db::Filter::new();
    filter.eq("enabled", q.enabled).eq("kind", q.kind);
    db::list(&filter, "created_at, id", page)
}

pub(crate) fn get(Path(id): Path<String>) -> Result<Json<Channel>, Problem> {
    db::get::<Channel>("id", &id).map(Json)
}

pub(crate) fn update(
    Path(id): Path<String>,
    Valid(patch): Valid<Patch>,
) -> Result<Json<Channel>, Problem> {
    let before: Channel = db::get("id", &id)?;
    let name = patch.name.unwrap_or_else(|| before.name.clone());
    let url = patch.url.unwrap_or_else(|| before.url.clone());
    let reply_to = patch.reply_to.unwrap_or_else(|| before.reply_to.clone());
    let fields = Fields {
        url: Some(url.clone()),
        to: patch.to.or_else(|| before.to.clone()),
        from: patch.from.or_else(|| before.from.clone()),
        reply_to,
        account_sid: before.account_sid.clone(),
        secret: None,
        auth_token: patch.auth_token,
    };
    let f = kinds::resolve(&before.kind, fields, &Settings::load(), false, url != before.url)?;
    if name != before.name {
        name_taken(&name, &id)?;
    }
    let description = patch.description.unwrap_or_else(|| before.description.clone());
    let enabled = patch.enabled.unwrap_or(before.enabled);
    let reason = if enabled { None } else { before.disabled_reason.clone() };
    let set = "name = $2, url = $3, description = $4, enabled = $5, disabled_reason = $6, \
               updated_at = $7, to_address = $8, from_address = $9, reply_to = $10, \
               secret = COALESCE($11, secret) WHERE id = $1";
    let params = params![
        id.as_str(),
        name,
        f.url,
        description,
        enabled,
        reason,
        clock::now_rfc3339(),
        f.to,
        f.from,
        f.reply_to,
        f.secret
    ];
    let after: Channel = db::update(set, params)?.ok_or_else(|| db::not_found::<Channel>(&id))?;
    log::audit("channel.update", &target(&id), Some(&before), Some(&after));
    Ok(Json(after))
}

/// Delete a channel; its messages not yet delivered become dead letters.
pub(crate) fn delete(Path(id): Path<String>) -> Result<NoContent, Problem> {
    let before: Channel = db::get("id", &id)?;
    let now = clock::now_rfc3339();
    let dead = "UPDATE notification_outbox SET status = 'dead', \
                last_error = 'the channel was deleted', next_attempt_at = NULL, updated_at = $2 \
                WHERE channel_id = $1 AND status IN ('queued', 'failed')";
    let done = db::batch(vec![
        db::statement("DELETE FROM notification_channels WHERE id = $1", params![id.as_str()]),
        db::statement(dead, params![id.as_str(), now]),
    ])?;
    if done.first() == Some(&0) {
        return Err(db::not_found::<Channel>(&id));
    }
    log::audit_deleted("channel.delete", &target(&id), &before);
    Ok(NoContent)
}

/// A new secret; the current one keeps signing until `rotation_grace_seconds` from now.
pub(crate) fn rotate(req: Request, Path(id): Path<String>) -> Result<Json<WithSecret>, Problem> {
    let body: Rotate = if req.body().is_empty() { Rotate::default() } else { req.json()? };
    let before: Channel = db::get("id", &id)?;
    if before.kind != "webhook" {
        let detail =
            format!("only a webhook channel has a signing secret; this one is {}", before.kind);
        return Err(Problem::conflict(detail));
    }
    let generated = body.secret.is_none().then(signing::generate_secret);
    let secret = body.secret.or_else(|| generated.clone()).unwrap_or_default();
    let now_ms = clock::now_ms();
    let grace_ms = Settings::load().rotation_grace_seconds.saturating_mul(1000);
    let expires = clock::rfc3339(now_ms.saturating_add(grace_ms));
    let set = "previous_secret = secret, previous_secret_expires_at = $2, secret = $3, \
               secret_rotated_at = $4, updated_at = $4 WHERE id = $1";
    let now = clock::rfc3339(now_ms);
    let after: Channel = db::update(set, params![id.as_str(), expires, secret, now])?
        .ok_or_else(|| db::not_found::<Channel>(&id))?;
    log::audit("channel.rotate_secret", &target(&id), Some(&before), Some(&after));
    Ok(Json(WithSecret { channel: after, secret: generated }))
}

/// The secrets a delivery signs with now: the current one, then the one before the last
/// rotation while its grace lasts.
pub(crate) fn signing_secrets(channel_id: &str, now: &str) -> Result<Vec<String>, Problem> {
    let sql = "SELECT secret, previous_secret, previous_secret_expires_at \
               FROM notification_channels WHERE id = $1";
    let Some(row) = db::query_one(sql, params![channel_id])? else { return Ok(Vec::new()) };
    let mut secrets = vec![row.get::<String>("secret")?];
    let previous: Option<String> = row.get("previous_secret")?;
    let expires: Option<String> = row.get("previous_secret_expires_at")?;
    if let (Some(previous), Some(expires)) = (previous, expires)
        && expires.as_str() > now
    {
        secrets.push(previous);
    }
    Ok(secrets)
}

/// Turn a channel off for `reason` (a 410 Gone), audited.
pub(crate) fn disable(channel: &Channel, reason: &str) -> Result<(), Problem> {
    let set = "enabled = $2, disabled_reason = $3, updated_at = $4 WHERE id = $1 AND enabled = $5";
    let params = params![channel.id.as_str(), false, reason, clock::now_rfc3339(), true];
    if let Some(after) = db::update::<Channel>(set, params)? {
        log::audit("channel.disable", &target(&channel.id), Some(channel), Some(&after));
        log::warn(&format!("channel `{}` disabled: {reason}", channel.name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_answered_and_a_given_one_is_not() {
        let channel = Channel {
            id: "c".into(),
            name: "n".into(),
            kind: "webhook".into(),
            url: "https://x".into(),
            to: None,
            from: None,
            reply_to: None,
            account_sid: None,
            description: None,
            enabled: true,
            disabled_reason: None,
            secret_rotated_at: None,
            previous_secret_expires_at: None,
            created_by: "a".into(),
            created_at: "t".into(),
            updated_at: "t".into(),
        };
        let shown = WithSecret { channel: channel.clone(), secret: Some("whsec_x".into()) };
        assert_eq!(serde_json::to_value(&shown).unwrap()["secret"], "whsec_x");
        let hidden = serde_json::to_value(WithSecret { channel, secret: None }).unwrap();
        assert!(hidden.get("secret").is_none(), "{hidden}");
    }
}
