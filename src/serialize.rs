//! `Serialize` for what a run gives back ([`Outcome`], [`Usage`], [`Violation`], [`Report`]),
//! with the `serde` feature, in the shape the CLI's `--json` prints (documented on
//! [`Outcome`]).

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, SerializeStruct, Serializer};

use crate::child::{Outcome, Usage};
use crate::probe::{Enforcement, Report};
use crate::supervise::Violation;

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Serialize for Usage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Usage", 7)?;
        st.serialize_field("wall_ms", &millis(self.wall))?;
        st.serialize_field("user_cpu_ms", &millis(self.user_cpu))?;
        st.serialize_field("sys_cpu_ms", &millis(self.sys_cpu))?;
        st.serialize_field("max_rss_bytes", &self.max_rss)?;
        st.serialize_field("cgroup_cpu_ms", &self.cgroup_cpu.map(millis))?;
        st.serialize_field("peak_memory_bytes", &self.peak_memory)?;
        st.serialize_field("pids_peak", &self.pids_peak)?;
        st.end()
    }
}

impl Serialize for Violation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Violation", 4)?;
        st.serialize_field("syscall", &self.syscall)?;
        st.serialize_field("nr", &self.nr)?;
        st.serialize_field("args", &self.args)?;
        st.serialize_field("pid", &self.pid)?;
        st.end()
    }
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for (layer, e) in self.iter() {
            seq.serialize_element(&Entry(layer, e))?;
        }
        seq.end()
    }
}

/// One layer of a [`Report`].
struct Entry<'a>(crate::probe::Layer, &'a Enforcement);

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Entry(layer, e) = self;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("layer", layer.name())?;
        m.serialize_entry("description", &layer.to_string())?;
        m.serialize_entry("enforced", &matches!(e, Enforcement::Enforced))?;
        match e {
            Enforcement::NotEnforced { reason, hint } => {
                m.serialize_entry("reason", reason)?;
                m.serialize_entry("hint", hint)?;
            }
            Enforcement::Substituted { substitute, reason } => {
                m.serialize_entry("substitute", substitute)?;
                m.serialize_entry("reason", reason)?;
            }
            Enforcement::Enforced => {}
        }
        m.end()
    }
}

/// An exit status as `{"code", "signal"}`.
struct Status(std::process::ExitStatus);

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Status", 2)?;
        st.serialize_field("code", &self.0.code())?;
        st.serialize_field("signal", &self.0.signal())?;
        st.end()
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Outcome", 9)?;
        st.serialize_field("status", &Status(self.status))?;
        st.serialize_field("success", &self.success())?;
        st.serialize_field("timed_out", &self.timed_out)?;
        st.serialize_field("oom_killed", &self.oom_killed)?;
        st.serialize_field("usage", &self.usage)?;
        st.serialize_field("violations", &self.violations)?;
        st.serialize_field("report", &self.report)?;
        st.serialize_field("stdout", &String::from_utf8_lossy(&self.stdout))?;
        st.serialize_field("stderr", &String::from_utf8_lossy(&self.stderr))?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use crate::{Command, Sandbox};

    #[test]
    fn an_outcome_serializes_as_the_cli_prints_it() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = Sandbox::new().output(&cmd).unwrap();
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["status"]["code"], 3);
        assert_eq!(v["status"]["signal"], serde_json::Value::Null);
        assert_eq!(v["success"], false);
        assert_eq!(v["timed_out"], false);
        assert_eq!(v["stdout"], "out\n");
        assert_eq!(v["stderr"], "err\n");
        assert!(v["usage"]["wall_ms"].as_f64().unwrap() > 0.0, "{v}");
        assert!(v["violations"].as_array().unwrap().is_empty());
        let report = v["report"].as_array().unwrap();
        let seccomp = report
            .iter()
            .find(|e| e["layer"] == "seccomp")
            .unwrap_or_else(|| panic!("no seccomp entry in {v}"));
        assert_eq!(seccomp["enforced"], true);
    }
}
