//! `spool dispatch`: one job from flags, or many from `--stdin` (one JSON request per line,
//! all or nothing).

use std::{
    io::{BufRead, Read},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{CliError, args, output};
use spool::{
    Backoff, ChainLink, ChainRest, DispatchOutcome, DispatchStatus, Envelope, JobOptions, Registry,
    Spool, Store, TraceContext, Unique, UniqueUntil,
};

#[derive(Debug, Args)]
pub(crate) struct DispatchArgs {
    /// The job name (e.g. `noop`, `sleep`, or one of your app's jobs).
    #[arg(required_unless_present = "stdin", conflicts_with = "stdin")]
    job: Option<String>,
    /// The job's payload as JSON.
    #[arg(long, default_value = "{}")]
    payload: String,
    /// Queue to send it to.
    #[arg(long, default_value = spool::DEFAULT_QUEUE)]
    queue: String,
    /// Make it available after this long (`5s`, `2m`, bare seconds).
    #[arg(long, value_parser = args::duration, conflicts_with = "at")]
    delay: Option<Duration>,
    /// Make it available at this RFC 3339 time, with its zone (`2030-01-31T09:00:00+02:00`).
    #[arg(long, value_parser = args::instant)]
    at: Option<std::time::SystemTime>,
    /// Maximum attempts (0 = unlimited).
    #[arg(long, value_parser = args::tries, allow_hyphen_values = true)]
    tries: Option<u32>,
    /// Delays between retries, e.g. `1,5,10` (seconds) or `500ms,2s`.
    #[arg(long, value_parser = args::duration_list)]
    backoff: Option<args::DurationList>,
    /// Longest one attempt may run.
    #[arg(long, value_parser = args::duration)]
    timeout: Option<Duration>,
    /// A caller-chosen id: dispatching it again while the job exists changes nothing.
    #[arg(long)]
    id: Option<String>,
    /// Dispatch this many copies.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Make the job unique under this key: while a job holds it, dispatching another prints
    /// `already_queued` and stores nothing.
    #[arg(long)]
    unique_key: Option<String>,
    /// Let the unique lock expire after this long even if still held.
    #[arg(long, value_parser = args::duration, requires = "unique_key")]
    unique_for: Option<Duration>,
    /// Tag the job (repeatable, at most 16, each 1-64 bytes without commas): `spool jobs
    /// --tag`, the completed history and the dashboard find it by its tags.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Read one request per line from stdin (each line carries its own options): {"job": .., "payload": .., "queue": ..,
    /// "delay": .., "at": .., "tries": .., "backoff": .., "timeout": .., "id": .., "unique_key": .., "unique_for": ..,
    /// "tags": [..]}; a line {"chain": [request, ...], "catch": request} dispatches a chain.
    #[arg(long, conflicts_with_all = ["payload", "queue", "delay", "at", "tries", "backoff", "timeout", "id", "count", "unique_key", "unique_for", "tags"])]
    stdin: bool,
    /// Dispatch every job as one batch with this name.
    #[arg(long)]
    batch: Option<String>,
    /// The batch carries on past failures.
    #[arg(long, requires = "batch")]
    allow_failures: bool,
    /// A request (JSON, as a `--stdin` line) pushed once every job of the batch succeeded;
    /// its envelope's `context` names the batch (its payload stays as given).
    #[arg(long, requires = "batch")]
    then: Option<String>,
    /// A request pushed once, at the batch's first failure.
    #[arg(long, requires = "batch")]
    catch: Option<String>,
    /// A request pushed once every job of the batch has run.
    #[arg(long, requires = "batch")]
    finally: Option<String>,
    /// The W3C trace context the jobs join (`00-TRACEID-SPANID-FLAGS`): their workers' log
    /// lines carry its trace id, and OpenTelemetry makes their spans its children. Without it,
    /// `TRACEPARENT` from the environment (as tools that carry a trace into child processes set
    /// it), ignored with a warning if malformed.
    #[arg(long, value_parser = traceparent)]
    traceparent: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// A `--traceparent` that follows the W3C rules, as given.
fn traceparent(text: &str) -> Result<String, String> {
    spool::TraceParent::parse(text)
        .map(|_| text.trim().to_string())
        .map_err(|e| format!("not a W3C traceparent (00-TRACEID-SPANID-FLAGS): {e}"))
}

/// One `--stdin` line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    job: String,
    #[serde(default)]
    payload: Option<Box<RawValue>>,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    delay: Option<DurationValue>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    tries: Option<i64>,
    #[serde(default)]
    backoff: Option<BackoffValue>,
    #[serde(default)]
    timeout: Option<DurationValue>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    unique_key: Option<String>,
    #[serde(default)]
    unique_for: Option<DurationValue>,
    #[serde(default)]
    tags: Vec<String>,
}

/// Tells a chain line from a job line (an untagged enum cannot hold raw payloads).
#[derive(Debug, Deserialize)]
struct LineKind {
    #[serde(default)]
    chain: Option<serde::de::IgnoredAny>,
}

/// `{"chain": [request, ...], "catch": request}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainRequest {
    chain: Vec<Request>,
    #[serde(default)]
    catch: Option<Request>,
}

/// A duration as a number of seconds or a string like `"500ms"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Seconds(f64),
    Text(String),
}

impl DurationValue {
    fn get(&self) -> Result<Duration, String> {
        match self {
            DurationValue::Seconds(s) => args::duration(&s.to_string()),
            DurationValue::Text(t) => args::duration(t),
        }
    }
}

/// Backoff as a list of durations or a comma string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum BackoffValue {
    List(Vec<DurationValue>),
    Text(String),
}

#[derive(Serialize)]
struct Queued<'a> {
    id: &'a str,
    queue: &'a str,
    status: &'static str,
}

fn status_name(status: DispatchStatus) -> &'static str {
    match status {
        DispatchStatus::AlreadyQueued => "already_queued",
        _ => "queued",
    }
}

pub(crate) async fn run(
    store: Arc<dyn Store>,
    registry: &Registry,
    a: DispatchArgs,
) -> Result<ExitCode, CliError> {
    let requests = if a.stdin {
        match read_stdin() {
            Ok(requests) => requests,
            Err(message) => {
                eprintln!("error: {message}");
                eprintln!("nothing was enqueued");
                return Ok(ExitCode::FAILURE);
            }
        }
    } else {
        from_flags(&a).map_err(CliError::Usage)?
    };
    let mut requests = requests;
    let inherited = || {
        let text = std::env::var("TRACEPARENT").ok()?;
        traceparent(&text)
            .map_err(|e| eprintln!("warning: TRACEPARENT ignored: {e}"))
            .ok()
    };
    if let Some(traceparent) = a.traceparent.clone().or_else(inherited) {
        for (envelope, _) in &mut requests {
            envelope.trace = Some(TraceContext {
                traceparent: traceparent.clone(),
                tracestate: None,
            });
        }
    }
    let queues: Vec<String> = requests.iter().map(|(e, _)| e.queue.clone()).collect();
    let spool = Spool::new(store);
    let seal = |envelope: Envelope| {
        if registry.is_encrypted(&envelope.job) {
            spool.seal_envelope(envelope)
        } else {
            Ok(envelope)
        }
    };
    // Job types the app registered as encrypted are sealed here too, so no secret reaches the
    // store in the clear whichever way the job was dispatched.
    let requests = requests
        .into_iter()
        .map(|(envelope, delay)| Ok((seal(envelope)?, delay)))
        .collect::<Result<Vec<_>, spool::DispatchError>>()?;
    if let Some(name) = &a.batch {
        let mut batch = spool.batch(name.clone());
        if a.allow_failures {
            batch = batch.allow_failures();
        }
        let callbacks = [
            ("then", &a.then),
            ("catch", &a.catch),
            ("finally", &a.finally),
        ];
        for (which, request) in callbacks {
            if let Some(request) = request {
                let (envelope, _) =
                    parse_line(request).map_err(|e| CliError::Usage(format!("--{which}: {e}")))?;
                batch = batch.callback_envelope(which, seal(envelope)?)?;
            }
        }
        for (envelope, delay) in requests {
            if !delay.is_zero() {
                return Err(CliError::Usage(
                    "jobs of a batch cannot be delayed; drop `delay`/`at` or --batch".into(),
                ));
            }
            batch = batch.add_envelope(envelope);
        }
        let dispatched = batch.dispatch().await?;
        print_batch(&dispatched, &queues, a.json);
        return Ok(ExitCode::SUCCESS);
    }
    let outcomes = spool.dispatch_envelopes(requests).await?;
    print(&outcomes, &queues, a.json, a.stdin || a.count > 1);
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct BatchQueued<'a> {
    batch_id: &'a str,
    jobs: Vec<Queued<'a>>,
}

fn print_batch(dispatched: &spool::BatchDispatch, queues: &[String], json: bool) {
    if !json {
        println!("batch {}", dispatched.id);
        for o in &dispatched.jobs {
            println!("{}", o.id);
        }
        return;
    }
    output::json(&BatchQueued {
        batch_id: &dispatched.id,
        jobs: queued_docs(&dispatched.jobs, queues),
    });
}

fn queued_docs<'a>(outcomes: &'a [DispatchOutcome], queues: &'a [String]) -> Vec<Queued<'a>> {
    outcomes
        .iter()
        .zip(queues)
        .map(|(o, q)| Queued {
            id: &o.id,
            queue: q,
            status: status_name(o.status),
        })
        .collect()
}

fn print(outcomes: &[DispatchOutcome], queues: &[String], json: bool, many: bool) {
    if !json {
        for o in outcomes {
            println!("{}", o.id);
        }
        return;
    }
    let docs = queued_docs(outcomes, queues);
    if many {
        output::json(&docs)
    } else {
        output::json(&docs[0])
    }
}

fn from_flags(a: &DispatchArgs) -> Result<Vec<(Envelope, Duration)>, String> {
    let job = a
        .job
        .clone()
        .ok_or("name the job to dispatch, or pass --stdin")?;
    if a.count == 0 {
        return Err("--count must be at least 1".into());
    }
    if a.id.is_some() && a.count > 1 {
        return Err("--id names one job; it cannot be combined with --count above 1".into());
    }
    let payload = RawValue::from_string(a.payload.clone())
        .map_err(|e| format!("--payload is not valid JSON: {e}"))?;
    let tags = checked_tags(&job, &a.tags).map_err(|e| format!("--tag: {e}"))?;
    let delay = match a.at {
        Some(at) => args::until(at),
        None => a.delay.unwrap_or_default(),
    };
    let options = JobOptions {
        tries: a.tries,
        backoff: a.backoff.clone().map(Backoff::List),
        timeout: a.timeout,
        unique: a.unique_key.as_ref().map(|key| Unique {
            key: key.clone(),
            ttl: a.unique_for,
            until: UniqueUntil::Done,
        }),
        ..JobOptions::default()
    };
    Ok((0..a.count)
        .map(|_| {
            let mut envelope = envelope(
                &job,
                &a.queue,
                payload.clone(),
                options.clone(),
                a.id.clone(),
            );
            envelope.tags = tags.clone();
            (envelope, delay)
        })
        .collect())
}

fn envelope(
    job: &str,
    queue: &str,
    payload: Box<RawValue>,
    options: JobOptions,
    id: Option<String>,
) -> Envelope {
    let mut envelope = Envelope::from_raw(job, queue, payload);
    envelope.options = options;
    if let Some(id) = id {
        envelope.id = id;
    }
    envelope
}

/// Reads every line first; any bad line refuses the whole input.
/// The longest `--stdin` line read. A line is one job (an envelope is at most 256 KiB by
/// default) or a chain of them; anything longer is refused without being held in memory.
const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

fn read_stdin() -> Result<Vec<(Envelope, Duration)>, String> {
    let mut input = std::io::stdin().lock();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for n in 1.. {
        buf.clear();
        let read = Read::by_ref(&mut input)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| format!("line {n}: cannot read: {e}"))?;
        if read == 0 {
            break;
        }
        if buf.len() > MAX_LINE_BYTES && !buf.ends_with(b"\n") {
            return Err(format!(
                "line {n} is longer than {} MiB: a line holds one job or chain",
                MAX_LINE_BYTES / (1024 * 1024)
            ));
        }
        let line = std::str::from_utf8(&buf).map_err(|_| format!("line {n} is not UTF-8"))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_line(line).map_err(|e| format!("line {n}: {e}"))?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<(Envelope, Duration), String> {
    let kind: LineKind = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if kind.chain.is_some() {
        parse_chain(serde_json::from_str(line).map_err(|e| e.to_string())?)
    } else {
        parse_request(serde_json::from_str(line).map_err(|e| e.to_string())?)
    }
}

/// A chain line becomes its head, carrying the rest (each link keeps its own delay).
fn parse_chain(chain: ChainRequest) -> Result<(Envelope, Duration), String> {
    let mut links = chain.chain.into_iter();
    let Some(head) = links.next() else {
        return Err("`chain` is empty".into());
    };
    let (mut head, delay) = parse_request(head)?;
    let rest = links
        .map(|r| parse_request(r).map(|(envelope, delay)| ChainLink { envelope, delay }))
        .collect::<Result<Vec<_>, _>>()?;
    let catch = chain
        .catch
        .map(|r| parse_request(r).map(|(envelope, _)| Box::new(envelope)))
        .transpose()?;
    if !rest.is_empty() || catch.is_some() {
        head.chain = Some(Box::new(ChainRest { links: rest, catch }));
    }
    Ok((head, delay))
}

fn parse_request(r: Request) -> Result<(Envelope, Duration), String> {
    if r.job.is_empty() {
        return Err("`job` is empty".into());
    }
    let delay = match (&r.delay, &r.at) {
        (Some(_), Some(_)) => return Err("give `delay` or `at`, not both".into()),
        (Some(d), None) => d.get()?,
        (None, Some(at)) => args::until(args::instant(at)?),
        (None, None) => Duration::ZERO,
    };
    let tries = match r.tries {
        Some(t) => Some(args::tries(&t.to_string())?),
        None => None,
    };
    let backoff = match &r.backoff {
        Some(BackoffValue::List(list)) => Some(
            list.iter()
                .map(DurationValue::get)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(BackoffValue::Text(text)) => Some(args::duration_list(text)?),
        None => None,
    };
    let options = JobOptions {
        tries,
        backoff: backoff.map(Backoff::List),
        timeout: r.timeout.as_ref().map(DurationValue::get).transpose()?,
        unique: match (r.unique_key, &r.unique_for) {
            (Some(key), ttl) => Some(Unique {
                key,
                ttl: ttl.as_ref().map(DurationValue::get).transpose()?,
                until: UniqueUntil::Done,
            }),
            (None, Some(_)) => return Err("`unique_for` needs `unique_key`".into()),
            (None, None) => None,
        },
        ..JobOptions::default()
    };
    let payload = r
        .payload
        .unwrap_or_else(|| RawValue::from_string("{}".into()).expect("valid"));
    let queue = r.queue.unwrap_or_else(|| spool::DEFAULT_QUEUE.to_string());
    if queue.is_empty() {
        return Err("`queue` is empty".into());
    }
    let tags = checked_tags(&r.job, &r.tags).map_err(|e| format!("`tags`: {e}"))?;
    let mut envelope = envelope(&r.job, &queue, payload, options, r.id);
    envelope.tags = tags;
    Ok((envelope, delay))
}

/// `tags` without repeats, checked against the tag rule.
fn checked_tags(job: &str, tags: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        if !out.contains(tag) {
            out.push(tag.clone());
        }
    }
    spool::limits::check_tags(job, &out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_with_every_option() {
        let (e, delay) = parse_line(
            r#"{"job":"sleep","payload":{"ms":5},"queue":"q","delay":"2s","tries":3,"backoff":[1,"500ms"],"timeout":30,"id":"abc"}"#,
        )
        .unwrap();
        assert_eq!(
            (e.job.as_str(), e.queue.as_str(), e.id.as_str()),
            ("sleep", "q", "abc")
        );
        assert_eq!(e.payload.plain(), Some(r#"{"ms":5}"#));
        assert_eq!(delay, Duration::from_secs(2));
        assert_eq!(e.options.tries, Some(3));
        assert_eq!(
            e.options.backoff,
            Some(Backoff::List(vec![
                Duration::from_secs(1),
                Duration::from_millis(500)
            ]))
        );
        assert_eq!(e.options.timeout, Some(Duration::from_secs(30)));
        let (e, _) = parse_line(r#"{"job":"x","tags":["a","b","a"]}"#).unwrap();
        assert_eq!(e.tags, ["a", "b"]);
    }

    #[test]
    fn bad_lines_say_why() {
        assert!(
            parse_line(r#"{"payload":{}}"#)
                .unwrap_err()
                .contains("missing field `job`")
        );
        assert!(
            parse_line(r#"{"job":"x","colour":1}"#)
                .unwrap_err()
                .contains("unknown field `colour`")
        );
        assert!(
            parse_line(r#"{"job":"x","tries":-1}"#)
                .unwrap_err()
                .contains("tries must be 0")
        );
        assert!(
            parse_line(r#"{"job":"x","delay":"soon"}"#)
                .unwrap_err()
                .contains("invalid duration")
        );
        assert!(parse_line("not json").is_err());
        let err = parse_line(r#"{"job":"x","tags":["a,b"]}"#).unwrap_err();
        assert!(
            err.contains("`tags`") && err.contains(spool::limits::TAG_RULE),
            "{err}"
        );
    }
}
