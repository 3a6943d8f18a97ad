//! Admission control for one provider key (or model): the shared state every process reads
//! and changes by compare-and-set, and the pure rules that change it.
//!
//! Pacing is a generic cell rate algorithm per limit (requests, tokens, input and output
//! tokens): each admitted call moves that limit's next free instant on by its cost over the
//! rate (98 % of the limit), whatever process sends it. A call goes once every limit's
//! reservations still outstanding, its own included, fit in the burst a provider allows at
//! its per-second grain (90 % of a second's worth), and not before a 429's pause ends: so an
//! idle key answers a burst at once and a busy one is paced evenly. After a 429 the rate
//! restarts at half and climbs back to full over five seconds.

use serde::{Deserialize, Serialize};

use super::{headers::Signals, provider::Limits};

/// The share of each limit Spool paces at: room for clock skew and network jitter.
const HEADROOM: f64 = 0.98;

/// The burst a provider allows at its per-second grain (a second's worth of each limit),
/// less a tenth for safety: reservations outstanding beyond now never exceed it.
const BURST_MS: f64 = 900.0;

/// How long the rate takes to climb back to full after a 429's pause.
const RAMP_MS: f64 = 5_000.0;

const DAY_MS: i64 = 86_400_000;

/// What one call costs against the limits, estimated before it is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Prompt tokens (estimated from the messages).
    pub input: u64,
    /// Completion tokens reserved (the request's `max_tokens`).
    pub output: u64,
}

impl Cost {
    /// Prompt and completion together.
    pub fn total(self) -> u64 {
        self.input + self.output
    }
}

/// The shared state of one provider key, as stored (JSON) and as `spool llm status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyState {
    /// Next free instant of the requests limit (ms since the epoch).
    pub next_request_ms: f64,
    /// Next free instant of the tokens limit.
    pub next_token_ms: f64,
    /// Next free instant of the input tokens limit.
    pub next_input_ms: f64,
    /// Next free instant of the output tokens limit.
    pub next_output_ms: f64,
    /// No call is sent on this key before this instant (a 429's pause).
    pub parked_until_ms: i64,
    /// Why it was parked: the last 429's message.
    pub park_reason: Option<String>,
    /// Why no call is sent on this key until an operator resumes it (a spent quota).
    pub blocked: Option<String>,
    /// Requests per minute the provider's headers said, when below the configured limit.
    pub learned_rpm: Option<u64>,
    /// Tokens per minute the provider's headers said, when below the configured limit.
    pub learned_tpm: Option<u64>,
    /// Start of the slow start after the last pause.
    pub ramp_from_ms: i64,
    /// Requests left in the provider's window, as its last answer said.
    pub remaining_requests: Option<u64>,
    /// Tokens left in the provider's window, as its last answer said.
    pub remaining_tokens: Option<u64>,
    /// The UTC day (days since the epoch) the `*_today` figures count.
    pub day: i64,
    /// Calls answered today.
    pub requests_today: u64,
    /// Tokens used today (from the answers' `usage`).
    pub tokens_today: u64,
    /// 429 answers so far.
    pub http_429: u64,
    /// Calls answered from the shared cache.
    pub cache_hits: u64,
    /// Answers paid for although the job had a recording of them (a retry that should have
    /// replayed; 0 unless a worker died between paying and recording, or a store write was
    /// lost).
    pub paid_again: u64,
}

/// What [`KeyState::admit`] decides.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Admission {
    /// Send at this instant (ms; now or later).
    At(i64),
    /// The key is blocked, for this reason.
    Blocked(String),
}

impl KeyState {
    /// The limits in force: the configured ones, lowered to what the provider said.
    pub fn effective(&self, configured: Limits) -> Limits {
        let lower = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Limits {
            rpm: lower(configured.rpm, self.learned_rpm),
            tpm: lower(configured.tpm, self.learned_tpm),
            ..configured
        }
    }

    /// Admits a call of `cost` as of `now`: its send instant, with the limits' next free
    /// instants moved past it.
    pub(crate) fn admit(&mut self, now: i64, cost: Cost, configured: Limits) -> Admission {
        if let Some(reason) = &self.blocked {
            return Admission::Blocked(reason.clone());
        }
        let limits = self.effective(configured);
        let earliest = (now.max(self.parked_until_ms)) as f64;
        let speed = self.ramp(earliest);
        let dims = [
            (limits.rpm, 1, self.next_request_ms),
            (limits.tpm, cost.total(), self.next_token_ms),
            (limits.itpm, cost.input, self.next_input_ms),
            (limits.otpm, cost.output, self.next_output_ms),
        ];
        // A call may go once its limits' outstanding reservations, itself included, fit in
        // the burst; one larger than the burst goes when nothing is outstanding.
        let start = dims
            .iter()
            .filter_map(|(limit, units, next)| {
                let spend = spend_ms(*limit, *units, speed)?;
                Some(next - (BURST_MS - spend).max(0.0))
            })
            .fold(earliest, f64::max);
        let advance = |limit: Option<u64>, units: u64, next: &mut f64| {
            if let Some(spend) = spend_ms(limit, units, speed) {
                *next = next.max(start) + spend;
            }
        };
        advance(limits.rpm, 1, &mut self.next_request_ms);
        advance(limits.tpm, cost.total(), &mut self.next_token_ms);
        advance(limits.itpm, cost.input, &mut self.next_input_ms);
        advance(limits.otpm, cost.output, &mut self.next_output_ms);
        Admission::At(start.ceil() as i64)
    }

    /// The rate's share at `at` during a slow start (1 when there is none).
    fn ramp(&self, at: f64) -> f64 {
        let since = at - self.ramp_from_ms as f64;
        if self.ramp_from_ms == 0 || since >= RAMP_MS {
            1.0
        } else {
            0.5 + 0.5 * since.max(0.0) / RAMP_MS
        }
    }

    /// Corrects the token limits with what a call really used, and counts it.
    pub(crate) fn settle(&mut self, now: i64, estimated: Cost, used: Cost, configured: Limits) {
        self.refund(estimated, used, configured);
        self.count(now, 1, used.total());
    }

    /// Gives back the tokens a call reserved but did not use (all of them when it was not
    /// answered).
    pub(crate) fn refund(&mut self, estimated: Cost, used: Cost, configured: Limits) {
        let limits = self.effective(configured);
        let refund = |limit: Option<u64>, next: &mut f64, estimated: u64, used: u64| {
            if let Some(per_minute) = limit {
                let units = estimated as f64 - used as f64;
                *next -= units * 60_000.0 / (per_minute as f64 * HEADROOM);
            }
        };
        refund(
            limits.tpm,
            &mut self.next_token_ms,
            estimated.total(),
            used.total(),
        );
        refund(
            limits.itpm,
            &mut self.next_input_ms,
            estimated.input,
            used.input,
        );
        refund(
            limits.otpm,
            &mut self.next_output_ms,
            estimated.output,
            used.output,
        );
    }

    /// Counts calls and tokens in today's figures.
    pub(crate) fn count(&mut self, now: i64, requests: u64, tokens: u64) {
        self.roll_day(now);
        self.requests_today += requests;
        self.tokens_today += tokens;
    }

    /// Starts today's figures afresh if they count an earlier day (a key idle since then
    /// still holds them).
    pub(crate) fn roll_day(&mut self, now: i64) {
        let day = now.div_euclid(DAY_MS);
        if day != self.day {
            self.day = day;
            self.requests_today = 0;
            self.tokens_today = 0;
        }
    }

    /// Learns from an answer's headers: limits only ever go down, and a window the provider
    /// says is spent holds the next call until its reset.
    pub(crate) fn calibrate(&mut self, now: i64, signals: &Signals, configured: Limits) {
        let clamp = |learned: &mut Option<u64>, said: Option<u64>, configured: Option<u64>| {
            if let Some(said) = said.filter(|s| *s > 0)
                && configured.is_none_or(|c| said < c)
            {
                *learned = Some(learned.map_or(said, |l| l.min(said)));
            }
        };
        clamp(
            &mut self.learned_rpm,
            signals.limit_requests,
            configured.rpm,
        );
        clamp(&mut self.learned_tpm, signals.limit_tokens, configured.tpm);
        if signals.remaining_requests == Some(0)
            && let Some(reset) = signals.reset_requests_ms
        {
            self.next_request_ms = self
                .next_request_ms
                .max((now + reset as i64) as f64 + BURST_MS);
        }
        if signals.remaining_tokens == Some(0)
            && let Some(reset) = signals.reset_tokens_ms
        {
            self.next_token_ms = self
                .next_token_ms
                .max((now + reset as i64) as f64 + BURST_MS);
        }
        if signals.remaining_requests.is_some() {
            self.remaining_requests = signals.remaining_requests;
        }
        if signals.remaining_tokens.is_some() {
            self.remaining_tokens = signals.remaining_tokens;
        }
    }

    /// Parks the key until `until` (a 429's or 503's named instant): nothing is sent on it
    /// before then, and the rate restarts slowly after.
    pub(crate) fn park(&mut self, until: i64, reason: &str) {
        self.http_429 += 1;
        if until > self.parked_until_ms {
            self.parked_until_ms = until;
            self.ramp_from_ms = until;
        }
        // The provider's bucket is spent: no burst on resuming, calls restart one by one.
        let full = until as f64 + BURST_MS;
        for next in [
            &mut self.next_request_ms,
            &mut self.next_token_ms,
            &mut self.next_input_ms,
            &mut self.next_output_ms,
        ] {
            *next = next.max(full);
        }
        self.park_reason = Some(reason.to_string());
    }

    /// Blocks the key until an operator resumes it.
    pub(crate) fn block(&mut self, reason: &str) {
        self.http_429 += 1;
        self.blocked = Some(reason.to_string());
    }

    /// What `spool llm resume` does: no block, no pause, limits learned afresh.
    pub(crate) fn resume(&mut self) {
        self.blocked = None;
        self.parked_until_ms = 0;
        self.park_reason = None;
        self.learned_rpm = None;
        self.learned_tpm = None;
    }
}

/// How long `units` of a per-minute `limit` take at `speed` (share of the paced rate), in
/// ms; `None` without a limit.
fn spend_ms(limit: Option<u64>, units: u64, speed: f64) -> Option<f64> {
    limit.map(|per_minute| units as f64 * 60_000.0 / (per_minute as f64 * HEADROOM * speed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RPM_6000: Limits = Limits {
        rpm: Some(6000),
        tpm: None,
        itpm: None,
        otpm: None,
    };

    fn at(admission: Admission) -> i64 {
        match admission {
            Admission::At(at) => at,
            Admission::Blocked(why) => panic!("blocked: {why}"),
        }
    }

    /// A provider's bucket at the per-second grain: capacity a second's worth, refilled
    /// continuously; true if a call of `units` at `at` (ms) passes.
    struct Bucket {
        per_ms: f64,
        capacity: f64,
        level: f64,
        at: f64,
    }

    impl Bucket {
        fn new(per_minute: u64) -> Bucket {
            let capacity = per_minute as f64 / 60.0;
            Bucket {
                per_ms: capacity / 1000.0,
                capacity,
                level: capacity,
                at: 0.0,
            }
        }
        fn take(&mut self, at: i64, units: f64) -> bool {
            let at = at as f64;
            self.level = (self.level + (at - self.at) * self.per_ms).min(self.capacity);
            self.at = at;
            let pass = self.level >= units.min(self.capacity) - 1e-9;
            if pass {
                self.level -= units;
            }
            pass
        }
    }

    #[test]
    fn calls_burst_a_second_then_keep_just_under_the_limit() {
        let mut state = KeyState::default();
        let mut provider = Bucket::new(6000);
        let cost = Cost {
            input: 10,
            output: 10,
        };
        let sends: Vec<i64> = (0..2000)
            .map(|_| at(state.admit(0, cost, RPM_6000)))
            .collect();
        for (i, send) in sends.iter().enumerate() {
            assert!(
                provider.take(*send, 1.0),
                "call {i} at {send} ms would get a 429"
            );
        }
        // The first ~90 go at once (the provider's per-second burst), then one every 10.2 ms.
        assert_eq!(sends[0], 0);
        assert!(sends[80] == 0, "{}", sends[80]);
        let rate = 1000.0 / (sends[1999] - sends[999]) as f64 * 60_000.0;
        assert!((6000.0 * 0.97..6000.0).contains(&rate), "{rate} a minute");
    }

    #[test]
    fn the_binding_limit_sets_the_pace_and_usage_refunds_tokens() {
        let limits = Limits {
            rpm: Some(6000),
            tpm: Some(60_000),
            ..Limits::default()
        };
        let mut state = KeyState::default();
        let cost = Cost {
            input: 100,
            output: 900,
        };
        at(state.admit(0, cost, limits));
        // 1,000 tokens at 60,000 a minute (98 %): the next call waits about 1.02 s.
        let second = at(state.admit(0, cost, limits));
        assert!((1_020..=1_021).contains(&second), "{second}");
        // The second used only 100 tokens: 900 come back, so a third can go at about 1.2 s.
        state.settle(
            1_500,
            cost,
            Cost {
                input: 100,
                output: 0,
            },
            limits,
        );
        let third = at(state.admit(0, cost, limits));
        assert!((1_100..=1_250).contains(&third), "{third}");
        assert_eq!(state.requests_today, 1);
        assert_eq!(state.tokens_today, 100);
    }

    #[test]
    fn a_park_holds_every_call_and_the_rate_climbs_back_slowly() {
        let mut state = KeyState::default();
        state.park(5_000, "Rate limit reached");
        let first = at(state.admit(1_000, Cost::default(), RPM_6000));
        assert!(
            (5_000..=5_025).contains(&first),
            "nothing before the named instant: {first}"
        );
        let second = at(state.admit(1_000, Cost::default(), RPM_6000));
        assert!(
            second - first >= 20,
            "half speed right after: {}",
            second - first
        );
        assert_eq!(state.http_429, 1);
    }

    #[test]
    fn blocks_hold_until_resumed_and_limits_only_go_down() {
        let mut state = KeyState::default();
        state.block("insufficient_quota");
        assert_eq!(
            state.admit(0, Cost::default(), RPM_6000),
            Admission::Blocked("insufficient_quota".into())
        );
        state.resume();
        assert_eq!(state.admit(0, Cost::default(), RPM_6000), Admission::At(0));

        let said = |limit| Signals {
            limit_requests: Some(limit),
            ..Signals::default()
        };
        state.calibrate(0, &said(3000), RPM_6000);
        assert_eq!(state.effective(RPM_6000).rpm, Some(3000));
        state.calibrate(0, &said(9000), RPM_6000);
        assert_eq!(state.effective(RPM_6000).rpm, Some(3000), "never up");
        let spent = Signals {
            remaining_requests: Some(0),
            reset_requests_ms: Some(700),
            ..Signals::default()
        };
        state.calibrate(10_000, &spent, RPM_6000);
        assert!(at(state.admit(10_000, Cost::default(), RPM_6000)) >= 10_700);
    }
}
