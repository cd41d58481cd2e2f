#!/usr/bin/env python3
"""Build a seccomp filter with libseccomp's Python binding and write its BPF.

Used by ringfence's differential test. Input (stdin), JSON:
  {"default": RET, "rules": [{"nr": N, "action": RET,
                              "args": [{"index": I, "op": "EQ|NE|LT|LE|GT|GE|MASKED_EQ",
                                        "value": V, "datum": D}]}]}
RET values are raw seccomp filter return values (e.g. 0x50001 for ERRNO(EPERM)); rules are
added in order. Output: the raw `struct sock_filter` array, written to the path in argv[1].
The bad-architecture action is KILL_PROCESS, as in ringfence's guard. Conflicting rules that
libseccomp refuses are reported on stderr and skipped (the first one added stays).
"""
import json
import sys

import seccomp

OPS = {
    "EQ": seccomp.EQ, "NE": seccomp.NE, "LT": seccomp.LT, "LE": seccomp.LE,
    "GT": seccomp.GT, "GE": seccomp.GE, "MASKED_EQ": seccomp.MASKED_EQ,
}


def action(ret):
    # The binding takes the action as a C int: KILL_PROCESS (0x80000000) is negative there.
    return ret - (1 << 32) if ret >= 1 << 31 else ret


def main():
    spec = json.load(sys.stdin)
    f = seccomp.SyscallFilter(defaction=action(spec["default"]))
    f.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)
    for r in spec["rules"]:
        args = []
        for a in r["args"]:
            if a["op"] == "MASKED_EQ":
                args.append(seccomp.Arg(a["index"], OPS[a["op"]], a["value"], a["datum"]))
            else:
                args.append(seccomp.Arg(a["index"], OPS[a["op"]], a["value"]))
        try:
            f.add_rule_exactly(action(r["action"]), r["nr"], *args)
        except Exception as e:  # noqa: BLE001 - report and go on, like runc
            print("skipped rule %r: %s" % (r, e), file=sys.stderr)
    with open(sys.argv[1], "wb") as out:
        f.export_bpf(out)


main()
