//! Kubernetes Events (`events.k8s.io/v1`) telling the story of an action on the objects users
//! look at: the runner's owner (its Job, from `RUNNER_CONTEXT_PLATFORM_OWNER_*`) and what the
//! runner created or adopted ([`StartOutput::objects`](crate::StartOutput::objects)), so that
//! `kubectl describe job` and `kubectl events` show it started, adopted, succeeded, failed
//! (with the reason) or was cancelled.
//!
//! Recorded with kube-runtime's [`Recorder`], which creates an Event and patches it into a
//! series when the same one repeats. Recording never fails the run: an Event that cannot be
//! written (no RBAC for `events.k8s.io` `events`, API server busy) is logged at `warn` and
//! dropped, after at most [`EVENT_TIMEOUT`].

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::context::ExecutionContext;

/// The longest one Event may take before it is dropped.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the Manager records, on the owner and on the runner's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Story {
    /// `Normal` `Started`: the action started.
    Started,
    /// `Normal` `Adopted`: a retried pod found the action its predecessor started.
    Adopted,
    /// `Normal` `Succeeded`.
    Succeeded,
    /// `Warning` `Failed`: the action failed, timed out, or could not be observed.
    Failed,
    /// `Warning` `Cancelled`: SIGTERM or SIGINT stopped the runner.
    Cancelled,
}

impl Story {
    fn parts(self) -> (EventType, &'static str, &'static str) {
        match self {
            Story::Started => (EventType::Normal, "Started", "Start"),
            Story::Adopted => (EventType::Normal, "Adopted", "Start"),
            Story::Succeeded => (EventType::Normal, "Succeeded", "WaitForCompletion"),
            Story::Failed => (EventType::Warning, "Failed", "WaitForCompletion"),
            Story::Cancelled => (EventType::Warning, "Cancelled", "WaitForCompletion"),
        }
    }
}

/// Records the Events of one action.
pub struct Events {
    recorder: Recorder,
    owner: Option<ObjectReference>,
    objects: Vec<ObjectReference>,
}

impl Events {
    /// Events reported by `<runner>-runner` (`instance`: the pod's name, `HOSTNAME`) about
    /// `ctx`'s owner, if it has one.
    pub fn new(
        client: kube::Client,
        runner: &str,
        instance: Option<String>,
        ctx: &ExecutionContext,
    ) -> Self {
        let reporter = Reporter {
            controller: format!("{runner}-runner"),
            instance,
        };
        let owner = ctx
            .platform
            .owner_reference
            .as_ref()
            .map(|o| ObjectReference {
                api_version: Some(o.api_version.clone()),
                kind: Some(o.kind.clone()),
                name: Some(o.name.clone()),
                uid: Some(o.uid.clone()),
                namespace: Some(ctx.platform.namespace.clone()),
                ..ObjectReference::default()
            });
        Events {
            recorder: Recorder::new(client, reporter),
            owner,
            objects: Vec::new(),
        }
    }

    /// From now on, Events are also recorded on `objects` (what the runner created or adopted).
    pub fn about(&mut self, objects: Vec<ObjectReference>) {
        self.objects = objects;
    }

    /// Records `story` with `note` (one line, cut to the 1 kB the API allows) on the owner and
    /// on every object; failures are logged, never returned.
    pub async fn record(&self, story: Story, note: &str) {
        let (type_, reason, action) = story.parts();
        let note = cut(note, 1000);
        // On every target at once: the final Event is recorded while the run ends.
        let publish = self.owner.iter().chain(&self.objects).map(|target| {
            let event = Event {
                type_,
                reason: reason.into(),
                note: Some(note.clone()),
                action: action.into(),
                secondary: None,
            };
            async move {
                match tokio::time::timeout(EVENT_TIMEOUT, self.recorder.publish(&event, target))
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(reason, object = ?target.name, error = %e,
                        "cannot record an Event (the run goes on)"),
                    Err(_) => tracing::warn!(reason, object = ?target.name,
                        "recording an Event timed out (the run goes on)"),
                }
            }
        });
        futures::future::join_all(publish).await;
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(super::cut("héllo", 2), "h");
        assert_eq!(super::cut("héllo", 3), "hé");
        assert_eq!(super::cut("abc", 10), "abc");
    }
}
