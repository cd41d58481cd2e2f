//! Pods: sandboxes that share a network, IPC and UTS namespace (and optionally a pid
//! namespace) and a parent cgroup, like the containers of a Kubernetes pod.
//!
//! A pod is a *holder* process — the pause container of Kubernetes — started with the pod's
//! namespaces, which does nothing but hold them, reap and wait to be told to exit
//! (`src/inside/init.rs`). Members ([`Sandbox::pod`]) enter the holder's namespaces through its
//! pidfd and keep their own mount, pid, cgroup and time namespaces. The pod's cgroup (with the
//! aggregate limits) is the parent of every member's cgroup; the holder itself stays out of it,
//! so the cgroup v2 rule "no processes in a cgroup whose children have controllers" holds.
//!
//! Killing the pod (or dropping it) kills every member the pod knows of (those started by
//! this process through [`Sandbox::pod`]) and everything in the pod's cgroup tree, then the
//! holder, and removes the cgroups.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cgroup::{CgroupConfig, CgroupUsage, Cpu, SandboxCgroup};
use crate::child::Child;
use crate::error::{Error, Result};
use crate::join::{JoinProblem, JoinSpec, PodLink};
use crate::ns::{Namespace, Net, NetChoice};
use crate::probe::{Compat, Enforcement, Layer, Report};
use crate::sandbox::Sandbox;
use crate::seccomp::Profile;

/// A pod's configuration: the namespaces its members share and the limits on their sum.
///
/// ```no_run
/// use ringfence::{Command, Net, Pod, Sandbox};
///
/// let pod = Pod::new().net(Net::New).hostname("ci").memory_limit(512 << 20).spawn()?;
/// let db = Sandbox::isolated().pod(&pod).spawn(
///     Command::new("python3").args(["-m", "http.server", "--bind", "127.0.0.1", "8000"]),
/// )?;
/// let job = Sandbox::isolated()
///     .pod(&pod)
///     .output(Command::new("python3").args(["-c", "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8000/').status)"]))?;
/// drop(pod); // kills the database too
/// # Ok::<(), ringfence::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Pod {
    net: NetChoice,
    hostname: Option<OsString>,
    pid_ns: bool,
    cgroup: CgroupConfig,
    compat: Compat,
}

impl Default for Pod {
    fn default() -> Self {
        Pod::new()
    }
}

impl Pod {
    /// A pod with a new network namespace (only `lo`, up), new IPC and UTS namespaces, a user
    /// namespace where the caller needs one, and no limits.
    pub fn new() -> Pod {
        Pod {
            net: NetChoice::New,
            hostname: None,
            pid_ns: false,
            cgroup: CgroupConfig::default(),
            compat: Compat::Required,
        }
    }

    /// The members' network: [`Net::New`] (the default), [`Net::User`] (one private network
    /// with outbound access for every member: its stack runs as long as the pod), or
    /// [`Net::Join`] an existing one. [`Net::Host`] shares the host's network with every
    /// member.
    pub fn net(mut self, net: Net) -> Pod {
        self.net = net.into();
        self
    }

    /// The hostname the members see.
    pub fn hostname(mut self, name: impl Into<OsString>) -> Pod {
        self.hostname = Some(name.into());
        self
    }

    /// Share one pid namespace between the members (Kubernetes' `shareProcessNamespace`):
    /// they see each other's processes, and the holder is their pid 1.
    pub fn pid_ns(mut self) -> Pod {
        self.pid_ns = true;
        self
    }

    /// CPU limit of the whole pod (see [`Sandbox::cpu_quota`]).
    pub fn cpu_quota(mut self, cpu: Cpu) -> Pod {
        self.cgroup.cpu = Some(cpu);
        self
    }

    /// Memory limit of the whole pod: the sum of its members' memory.
    pub fn memory_limit(mut self, limit: impl Into<crate::Size>) -> Pod {
        self.cgroup.memory = Some(limit.into().0);
        self
    }

    /// Memory plus swap limit of the whole pod (see [`Sandbox::memory_swap`]).
    pub fn memory_swap(mut self, swap: impl Into<crate::Size>) -> Pod {
        self.cgroup.swap = Some(swap.into().0);
        self
    }

    /// Limit on the number of processes of all members together.
    pub fn pids_limit(mut self, max: u64) -> Pod {
        self.cgroup.pids = Some(max);
        self
    }

    /// CPUs the members may run on, e.g. `"0"` or `"0-1"`.
    pub fn cpuset(mut self, cpus: impl Into<String>) -> Pod {
        self.cgroup.cpuset = Some(cpus.into());
        self
    }

    /// Create the pod's cgroup below `dir` instead of below the caller's own cgroup.
    pub fn cgroup_parent(mut self, dir: impl AsRef<Path>) -> Pod {
        self.cgroup.parent = Some(dir.as_ref().to_path_buf());
        self
    }

    /// How to treat what this host cannot provide (the pod's namespaces, its cgroup limits):
    /// fail with the reason and the fix ([`Compat::Required`], the default), or start without
    /// it and say so in the report ([`Compat::BestEffort`]).
    pub fn compat(mut self, level: Compat) -> Pod {
        self.compat = level;
        self
    }

    /// Start the pod: its cgroup, then its holder.
    pub fn spawn(&self) -> Result<RunningPod> {
        let mut holder = Sandbox::new()
            .compat(self.compat)
            .ipc_ns()
            .uts_ns()
            .net_choice(self.net.clone())
            // The holder runs none of the members' code: it needs no filter.
            .seccomp(Profile::unconfined());
        if self.pid_ns {
            holder = holder.pid_ns();
        }
        if let Some(h) = &self.hostname {
            holder = holder.hostname(h);
        }
        let has_limits = !CgroupConfig {
            parent: None,
            ..self.cgroup.clone()
        }
        .is_empty();
        // A cgroup for the pod whenever one can be made: it is what kills every member's
        // processes. Required when limits were asked for (unless best effort).
        let (cgroup, cgroup_problem) = match SandboxCgroup::create(&self.cgroup) {
            Ok(c) => (Some(c), None),
            Err(e) if has_limits && self.compat == Compat::Required => {
                return Err(Error::Cgroup(e));
            }
            Err(e) => (None, Some(e.to_string())),
        };
        let child = crate::spawn::spawn_holder(&holder)?;
        let mut report = child.report().clone();
        match (&cgroup, cgroup_problem) {
            (Some(_), _) => report.push(Layer::Cgroup, Enforcement::Enforced),
            (None, Some(reason)) if has_limits => report.push(
                Layer::Cgroup,
                Enforcement::NotEnforced {
                    reason,
                    hint: "run as root, or in a delegated cgroup (systemd-run --user --scope -p Delegate=yes)",
                },
            ),
            _ => {}
        }
        Ok(RunningPod {
            holder: child,
            cgroup,
            members: Arc::default(),
            pid_ns: self.pid_ns,
            report,
        })
    }
}

/// Enough to add members to a running pod from another process (as `ringfence run --pod`
/// does): the holder's pid, the pod's cgroup directory, and whether it shares a pid namespace.
/// Members added this way are killed with the pod through its cgroup (or its pid namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    /// The pid of the pod's holder process.
    pub holder: u32,
    /// The pod's cgroup directory (on cgroup v1, the one in any hierarchy), if it has one.
    pub cgroup: Option<PathBuf>,
    /// Whether the members share the holder's pid namespace.
    pub pid_ns: bool,
}

/// A running pod (see [`Pod`]). Dropping it kills every member and the holder.
#[derive(Debug)]
pub struct RunningPod {
    holder: Child,
    cgroup: Option<SandboxCgroup>,
    members: Arc<Mutex<Vec<OwnedFd>>>,
    pid_ns: bool,
    report: Report,
}

/// The namespaces a member shares with its pod.
fn shared(pid_ns: bool) -> Vec<Namespace> {
    let mut kinds = vec![
        Namespace::User,
        Namespace::Net,
        Namespace::Ipc,
        Namespace::Uts,
    ];
    if pid_ns {
        kinds.push(Namespace::Pid);
    }
    kinds
}

impl RunningPod {
    /// The pid of the holder process.
    pub fn id(&self) -> u32 {
        self.holder.id()
    }

    /// The process id of the pod's user-mode network stack, with [`Net::User`].
    pub fn network_stack_pid(&self) -> Option<u32> {
        self.holder.network_stack_pid()
    }

    /// What the pod's namespaces and cgroup enforce on this host.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// How to reach this pod from another process.
    pub fn pod_ref(&self) -> PodRef {
        PodRef {
            holder: self.id(),
            cgroup: self.cgroup_dir(),
            pid_ns: self.pid_ns,
        }
    }

    fn cgroup_dir(&self) -> Option<PathBuf> {
        self.cgroup
            .as_ref()
            .and_then(|c| c.dirs().first().map(|d| d.to_path_buf()))
    }

    /// What the members used together so far (CPU time, peak memory, ...), when the pod has a
    /// cgroup.
    pub fn usage(&self) -> Option<CgroupUsage> {
        self.cgroup.as_ref().map(|c| c.usage())
    }

    pub(crate) fn join_spec(&self) -> std::result::Result<JoinSpec, JoinProblem> {
        let fd = self
            .holder
            .pidfd()
            .try_clone_to_owned()
            .map_err(|e| JoinProblem {
                pid: self.id(),
                reason: format!("cannot duplicate the holder's pidfd: {e}"),
                hint: "raise the open-files limit (ulimit -n)",
            })?;
        let mut spec = crate::join::open(self.id() as libc::pid_t, Some(fd), &shared(self.pid_ns))?;
        spec.cgroup.clear();
        spec.pod = Some(PodLink {
            cgroup_parent: self.cgroup_dir(),
            members: self.members.clone(),
            pid_ns: self.pid_ns,
        });
        Ok(spec)
    }

    /// End the pod: every member and the holder are killed, the cgroups removed. Waits until
    /// the holder is gone.
    pub fn kill(&mut self) -> Result<()> {
        let members = std::mem::take(&mut *self.members.lock().unwrap_or_else(|e| e.into_inner()));
        for m in &members {
            let _ = crate::spawn::pidfd_kill(m, libc::SIGKILL);
        }
        // The pod's cgroup tree holds every member's cgroup: killing it reaches members
        // started by other processes too (`PodRef`), and removing it removes theirs.
        if let Some(cg) = &self.cgroup {
            cg.kill().map_err(Error::Cgroup)?;
        }
        self.holder.kill()?;
        self.holder.wait()?;
        if let Some(cg) = self.cgroup.take() {
            cg.remove().map_err(Error::Cgroup)?;
        }
        Ok(())
    }
}

impl Drop for RunningPod {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            tracing::warn!("could not end the pod: {e}");
        }
    }
}

impl Sandbox {
    /// Like [`Sandbox::pod`], for a pod started by another process (see [`PodRef`]).
    pub fn pod_ref(self, pod: &PodRef) -> Sandbox {
        let spec = match libc::pid_t::try_from(pod.holder) {
            Ok(pid) => crate::join::open(pid, None, &shared(pod.pid_ns)).map(|mut spec| {
                spec.cgroup.clear();
                spec.pod = Some(PodLink {
                    cgroup_parent: pod.cgroup.clone(),
                    members: Arc::default(),
                    pid_ns: pod.pid_ns,
                });
                spec
            }),
            Err(_) => Err(JoinProblem {
                pid: pod.holder,
                reason: "not a valid pid".into(),
                hint: "give the pid of a running pod's holder",
            }),
        };
        self.with_pod_spec(spec)
    }
}
