//! Admission control for one provider key (or model): the shared state every process reads
//! and changes by compare-and-set, and the pure rules that change it.
//!
//! Pacing is a generic cell rate algorithm per limit (requests, tokens, input and output
//! tokens): each admitted call moves that limit's next free instant on by its cost over the
//! rate, so calls leave evenly spaced at 98 % of the limit whatever process sends them. A
//! call's send instant is the latest of the limits' next free instants, a 429's pause, and
//! now. After a 429 the rate restarts at half and climbs back to full over five seconds.

use serde::{Deserialize, Serialize};

use super::{headers::Signals, provider::Limits};

/// The share of each limit Spool paces at: room for clock skew and network jitter.
const HEADROOM: f64 = 0.98;

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
        let start = [
            now as f64,
            self.parked_until_ms as f64,
            pick(limits.rpm, self.next_request_ms),
            pick(limits.tpm, self.next_token_ms),
            pick(limits.itpm, self.next_input_ms),
            pick(limits.otpm, self.next_output_ms),
        ]
        .into_iter()
        .fold(f64::MIN, f64::max);
        let speed = self.ramp(start);
        let step = |limit: Option<u64>, units: u64| match limit {
            Some(per_minute) => units as f64 * 60_000.0 / (per_minute as f64 * HEADROOM * speed),
            None => 0.0,
        };
        self.next_request_ms = start + step(limits.rpm, 1);
        self.next_token_ms = start + step(limits.tpm, cost.total());
        self.next_input_ms = start + step(limits.itpm, cost.input);
        self.next_output_ms = start + step(limits.otpm, cost.output);
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
        let day = now.div_euclid(DAY_MS);
        if day != self.day {
            self.day = day;
            self.requests_today = 0;
            self.tokens_today = 0;
        }
        self.requests_today += requests;
        self.tokens_today += tokens;
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
            self.next_request_ms = self.next_request_ms.max((now + reset as i64) as f64);
        }
        if signals.remaining_tokens == Some(0)
            && let Some(reset) = signals.reset_tokens_ms
        {
            self.next_token_ms = self.next_token_ms.max((now + reset as i64) as f64);
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

/// A limit's next free instant, or nothing when there is no such limit.
fn pick(limit: Option<u64>, next: f64) -> f64 {
    if limit.is_some() { next } else { f64::MIN }
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

    #[test]
    fn calls_are_spaced_at_just_under_the_limit() {
        let mut state = KeyState::default();
        let cost = Cost {
            input: 10,
            output: 10,
        };
        let sends: Vec<i64> = (0..100)
            .map(|_| at(state.admit(1_000, cost, RPM_6000)))
            .collect();
        assert_eq!(sends[0], 1_000);
        // 6,000 a minute at 98 %: one every 10.2 ms; 100 calls span about a second.
        let span = sends[99] - sends[0];
        assert!((1_000..=1_020).contains(&span), "{span}");
        assert!(sends.windows(2).all(|w| w[1] - w[0] >= 10));
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
        assert_eq!(first, 5_000, "nothing before the named instant");
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
