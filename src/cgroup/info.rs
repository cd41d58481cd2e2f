//! Which cgroup backend this host has and where this process's own cgroups are
//! ([`cgroup_info`]), from `/proc/self/mountinfo` and `/proc/self/cgroup`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::unistd::{AccessFlags, access};

/// The v1 controllers ringfence uses.
pub(crate) const V1_CONTROLLERS: [&str; 6] =
    ["cpu", "cpuacct", "cpuset", "memory", "pids", "freezer"];

/// The v1 subsystems the kernel knows (mount options naming anything else are not controllers).
const V1_SUBSYSTEMS: [&str; 14] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "blkio",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// The cgroup version in use for resource control on this host.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupBackend {
    /// The unified hierarchy (cgroup v2) mounted at `mount`.
    V2 {
        /// Where the cgroup2 filesystem is mounted, usually `/sys/fs/cgroup`.
        mount: PathBuf,
    },
    /// Legacy hierarchies (cgroup v1, including hybrid layouts where a cgroup2 mount exists
    /// but the controllers are on v1): controller name → mount point of its hierarchy.
    /// Co-mounted controllers (`cpu,cpuacct`) share one mount point.
    V1 {
        /// Controller name → mount point.
        hierarchies: BTreeMap<String, PathBuf>,
    },
    /// No usable cgroup filesystem.
    Unavailable {
        /// What was found.
        reason: String,
    },
}

/// One controller as this process can use it.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerInfo {
    /// This process's own cgroup directory in the controller's hierarchy (from
    /// `/proc/self/cgroup`): sandbox cgroups are created below it.
    pub own: PathBuf,
    /// Whether this process may create cgroups in [`own`](Self::own) (write access).
    pub writable: bool,
    /// On v2: whether the controller is enabled in `own`'s `cgroup.subtree_control`, so that
    /// new child cgroups get it without changes. Always `true` on v1.
    pub enabled: bool,
}

/// What this host offers for cgroups, found once per process by [`cgroup_info`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupInfo {
    /// v1 or v2, with mount points.
    pub backend: CgroupBackend,
    /// Every controller available to this process (v2: listed in its own cgroup's
    /// `cgroup.controllers`; v1: mounted, with this process's cgroup visible), by name.
    pub controllers: BTreeMap<String, ControllerInfo>,
    /// On v2: this process's own cgroup directory. On v1: `None` (see
    /// [`ControllerInfo::own`] per controller).
    pub own_v2: Option<PathBuf>,
}

impl CgroupInfo {
    /// The controller, if this process can see it.
    pub fn controller(&self, name: &str) -> Option<&ControllerInfo> {
        self.controllers.get(name)
    }

    /// Whether this is the v2 backend.
    pub fn is_v2(&self) -> bool {
        matches!(self.backend, CgroupBackend::V2 { .. })
    }
}

/// What this host offers for cgroups (backend, mount points, this process's own cgroups,
/// usable controllers). Found on first use and cached for the life of the process; it is what
/// sandboxes will use and what `ringfence doctor` prints.
pub fn cgroup_info() -> &'static CgroupInfo {
    static INFO: OnceLock<CgroupInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let cgroup = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        detect(&mountinfo, &cgroup, &|p| p.exists(), &|p| {
            access(p, AccessFlags::W_OK).is_ok()
        })
    })
}

/// One line of `/proc/self/mountinfo`, the fields ringfence needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The path inside the filesystem that is mounted (`/` unless a subtree is bind-mounted).
    pub root: String,
    pub mount_point: PathBuf,
    pub fstype: String,
    pub super_opts: Vec<String>,
}

/// Undo mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup and cgroup2 mounts in a mountinfo text.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let mut post = post.split(' ');
            let fstype = post.next()?;
            let _source = post.next()?;
            let super_opts = post.next().unwrap_or("");
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            Some(Mount {
                root: unescape(pre.get(3)?),
                mount_point: PathBuf::from(unescape(pre.get(4)?)),
                fstype: fstype.to_owned(),
                super_opts: super_opts.split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// One line of `/proc/self/cgroup`: hierarchy id, controllers (empty for v2 or a named
/// hierarchy), path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Membership {
    pub id: u32,
    pub controllers: Vec<String>,
    pub path: String,
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let id = it.next()?.parse().ok()?;
            let ctl = it.next()?;
            let path = it.next()?;
            Some(Membership {
                id,
                controllers: ctl
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                path: path.to_owned(),
            })
        })
        .collect()
}

/// The directory of cgroup `path` (as in `/proc/self/cgroup`) on `mount`, or `None` when the
/// mount shows another subtree that does not contain it.
fn dir_on(mount: &Mount, path: &str) -> Option<PathBuf> {
    let rel = if mount.root == "/" {
        path
    } else {
        let rest = path.strip_prefix(mount.root.as_str())?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        rest
    };
    let rel = rel.trim_start_matches('/');
    Some(if rel.is_empty() {
        mount.mount_point.clone()
    } else {
        mount.mount_point.join(rel)
    })
}

/// Build the [`CgroupInfo`] from the two proc files; `exists` and `writable` are seams for tests.
pub(crate) fn detect(
    mountinfo: &str,
    proc_cgroup: &str,
    exists: &dyn Fn(&Path) -> bool,
    writable: &dyn Fn(&Path) -> bool,
) -> CgroupInfo {
    let mounts = parse_mountinfo(mountinfo);
    let members = parse_proc_cgroup(proc_cgroup);

    // v1: controller → (mount, own dir). The first mount of a hierarchy wins.
    let mut v1: BTreeMap<String, (PathBuf, PathBuf)> = BTreeMap::new();
    for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
        for c in m
            .super_opts
            .iter()
            .filter(|o| V1_SUBSYSTEMS.contains(&o.as_str()))
        {
            if v1.contains_key(c) {
                continue;
            }
            let Some(member) = members
                .iter()
                .find(|x| x.id != 0 && x.controllers.contains(c))
            else {
                continue;
            };
            if let Some(dir) = dir_on(m, &member.path).filter(|d| exists(d)) {
                v1.insert(c.clone(), (m.mount_point.clone(), dir));
            }
        }
    }

    // Hybrid hosts mount cgroup2 too, but resource control is where the controllers are.
    if V1_CONTROLLERS.iter().any(|c| v1.contains_key(*c)) {
        let controllers = v1
            .iter()
            .map(|(c, (_, own))| {
                let info = ControllerInfo {
                    own: own.clone(),
                    writable: writable(own),
                    enabled: true,
                };
                (c.clone(), info)
            })
            .collect();
        return CgroupInfo {
            backend: CgroupBackend::V1 {
                hierarchies: v1.into_iter().map(|(c, (m, _))| (c, m)).collect(),
            },
            controllers,
            own_v2: None,
        };
    }

    let v2 = mounts.iter().find(|m| m.fstype == "cgroup2");
    let member = members
        .iter()
        .find(|x| x.id == 0 && x.controllers.is_empty());
    let (Some(mount), Some(member)) = (v2, member) else {
        let reason = if mounts.is_empty() {
            "no cgroup filesystem is mounted".to_owned()
        } else {
            "this process's cgroup is not listed in /proc/self/cgroup".to_owned()
        };
        return CgroupInfo {
            backend: CgroupBackend::Unavailable { reason },
            controllers: BTreeMap::new(),
            own_v2: None,
        };
    };
    let Some(own) = dir_on(mount, &member.path).filter(|d| exists(d)) else {
        return CgroupInfo {
            backend: CgroupBackend::Unavailable {
                reason: format!(
                    "this process's cgroup {} is not visible below {}",
                    member.path,
                    mount.mount_point.display()
                ),
            },
            controllers: BTreeMap::new(),
            own_v2: None,
        };
    };
    let list = |file: &str| -> Vec<String> {
        fs::read_to_string(own.join(file))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let available = list("cgroup.controllers");
    let enabled = list("cgroup.subtree_control");
    let w = writable(&own);
    CgroupInfo {
        backend: CgroupBackend::V2 {
            mount: mount.mount_point.clone(),
        },
        controllers: available
            .into_iter()
            .map(|c| {
                let info = ControllerInfo {
                    own: own.clone(),
                    writable: w,
                    enabled: enabled.contains(&c),
                };
                (c, info)
            })
            .collect(),
        own_v2: Some(own),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn parses_proc_cgroup() {
        let m = parse_proc_cgroup(
            "4:memory:/a/b\n3:cpu,cpuacct:/\n0::/user.slice/x\n1:name=systemd:/y\n",
        );
        assert_eq!(m[0].controllers, ["memory"]);
        assert_eq!(m[0].path, "/a/b");
        assert_eq!(m[1].controllers, ["cpu", "cpuacct"]);
        assert_eq!(m[2].id, 0);
        assert!(m[2].controllers.is_empty());
        assert_eq!(m[2].path, "/user.slice/x");
    }

    #[test]
    fn parses_mountinfo_with_escapes() {
        let m = parse_mountinfo(
            "50 1 0:40 /sub /mnt/with\\040space rw shared:1 - cgroup2 cgroup2 rw,nsdelegate\n\
             51 1 0:41 / /proc rw - proc proc rw\n",
        );
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].root, "/sub");
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(m[0].super_opts, ["rw", "nsdelegate"]);
    }

    #[test]
    fn hybrid_host_is_v1() {
        let info = detect(HYBRID_MOUNTINFO, HYBRID_CGROUP, &|_| true, &|_| true);
        let CgroupBackend::V1 { hierarchies } = &info.backend else {
            panic!("{info:?}")
        };
        assert_eq!(hierarchies["cpu"], PathBuf::from("/sys/fs/cgroup/cpu"));
        assert!(!hierarchies.contains_key("name=systemd"));
        assert_eq!(
            info.controllers["memory"].own,
            PathBuf::from("/sys/fs/cgroup/memory/process_api/abc")
        );
        assert_eq!(
            info.controllers["pids"].own,
            PathBuf::from("/sys/fs/cgroup/pids")
        );
        assert!(!info.controllers.contains_key("cpuset"));
    }

    #[test]
    fn comounted_v1_controllers_share_a_directory() {
        let info = detect(
            "1 0 0:1 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
            "2:cpu,cpuacct:/user.slice\n0::/\n",
            &|_| true,
            &|_| false,
        );
        assert_eq!(info.controllers["cpu"].own, info.controllers["cpuacct"].own);
        assert_eq!(
            info.controllers["cpu"].own,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/user.slice")
        );
        assert!(!info.controllers["cpu"].writable);
    }

    #[test]
    fn pure_v2_host() {
        let info = detect(
            "30 23 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
            "0::/user.slice/user-1000.slice/session-2.scope\n",
            &|_| true,
            &|_| true,
        );
        assert_eq!(
            info.backend,
            CgroupBackend::V2 {
                mount: "/sys/fs/cgroup".into()
            }
        );
        assert_eq!(
            info.own_v2,
            Some(PathBuf::from(
                "/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope"
            ))
        );
    }

    #[test]
    fn v2_mount_of_a_subtree() {
        // A container whose cgroup2 mount shows only its own subtree (no cgroup namespace).
        let info = detect(
            "30 23 0:27 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/docker/abc/inner\n",
            &|_| true,
            &|_| true,
        );
        assert_eq!(info.own_v2, Some(PathBuf::from("/sys/fs/cgroup/inner")));
        let info = detect(
            "30 23 0:27 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/docker/abcdef\n",
            &|_| true,
            &|_| true,
        );
        assert!(matches!(info.backend, CgroupBackend::Unavailable { .. }));
    }

    #[test]
    fn nothing_mounted() {
        let info = detect("", "", &|_| true, &|_| true);
        assert!(matches!(info.backend, CgroupBackend::Unavailable { .. }));
    }

    #[test]
    fn this_host_is_detected() {
        let info = cgroup_info();
        eprintln!("{info:#?}");
        assert!(std::ptr::eq(info, cgroup_info()));
    }
}
