using static Periscope.Linux.Inference.StructuralFacts;

namespace Periscope.Linux.Inference;

/// <summary>
/// What `ps --full` reads, without BTF: mm_struct.arg_start..env_end (declared right after start_stack, in that order)
/// and the credential ids and capability sets after cred.uid (include/linux/cred.h: uid, gid, suid, sgid, euid, egid,
/// fsuid, fsgid, securebits, then kernel_cap_t cap_inheritable, cap_permitted, cap_effective, cap_bset, cap_ambient).
/// Each is checked against every user process's data before it is reported.
/// </summary>
public sealed partial class OffsetInference
{
    /// <summary>A process's arguments and environment span at most this much of its stack (the kernel caps them at a
    /// quarter of the stack limit; 256 MiB is far above any default).</summary>
    private const ulong MaxArgEnvSpan = 256UL << 20;

    private void InferProcessDetails(TaskEvidence ev)
    {
        InferMmArguments(ev);
        InferCredentialSets(ev);
    }

    private void InferMmArguments(TaskEvidence ev)
    {
        string[] names = ["arg_start", "arg_end", "env_start", "env_end"];
        if (_report.Find("mm_struct", "start_code")?.Offset is not { } startCode || ev.UserMms.Count == 0)
        {
            foreach (var n in names) _report.AddUnknown("mm_struct", n, "needs mm_struct.start_code and user processes");
            return;
        }
        int argStart = startCode + _w.MmStartStack + _p;
        bool holds = ev.UserMms.All(mm =>
        {
            Step();
            var v = new ulong[names.Length];
            for (int i = 0; i < v.Length; i++) if (!_r.TryULong(mm + (ulong)(argStart + i * _p), out v[i]) || _r.IsKernelPointer(v[i])) return false;
            return v[0] != 0 && v[0] <= v[1] && v[1] <= v[2] && v[2] <= v[3] && v[3] - v[0] <= MaxArgEnvSpan;
        });
        for (int i = 0; i < names.Length; i++)
            if (holds)
                _report.AddStructural("mm_struct", names[i], argStart + i * _p,
                    "declared after start_stack: arg_start, arg_end, env_start, env_end (checked: ordered user addresses within 256 MiB in every user mm)");
            else _report.AddUnknown("mm_struct", names[i], "the words after start_stack are not ordered user addresses in every user mm");
    }

    private void InferCredentialSets(TaskEvidence ev)
    {
        string[] ids = ["suid", "sgid", "egid", "fsuid", "fsgid"];
        int[] idOffsets = [8, 12, 20, 24, 28];
        string[] caps = ["cap_inheritable", "cap_permitted", "cap_effective", "cap_bset", "cap_ambient"];
        if (_report.Find("cred", "uid")?.Offset is not { } uid || InitCred() is not { } initCred || SmallWindow(initCred) is not { } w || ev.RealCred is not { } rc)
        {
            foreach (var n in ids.Concat(caps)) _report.AddUnknown("cred", n, "needs cred.uid, init_cred and task_struct.real_cred");
            return;
        }
        var creds = ev.AllLeaders.Select(t => Ptr(t + (ulong)rc)).Where(IsKernel).Distinct().ToList();
        // Ids: a uid/gid is below 2^31 or INVALID_UID (-1) in every process's credentials.
        bool idsHold = creds.All(c => { Step(); for (int i = 0; i < 8; i++) if (!_r.TryU32(c + (ulong)(uid + 4 * i), out uint id) || (id >= 0x80000000 && id != uint.MaxValue)) return false; return true; });
        for (int i = 0; i < ids.Length; i++)
            if (idsHold) _report.AddStructural("cred", ids[i], uid + idOffsets[i], "uid, gid, suid, sgid, euid, egid, fsuid, fsgid: u32 each (checked: every process's ids are below 2^31 or -1)");
            else _report.AddUnknown("cred", ids[i], "some process's credential ids are not uids");
        // Capabilities: kernel_cap_t is u32[2] (4-byte aligned) before 6.3 and u64 since: right after securebits or at the
        // next 8. init_cred tells which: the empty inheritable set, then three equal full sets. Every process's effective
        // set lies inside its permitted one, its ambient set inside permitted and inheritable (cap_raise_ambient's rule).
        var candidates = new[] { uid + CredIdsBytes, (uid + CredIdsBytes + 7) & ~7 }.Distinct().Where(c =>
        {
            Step();
            if (c + 40 > w.Length || U64(w, c) != 0 || U64(w, c + 8) == 0 || U64(w, c + 8) != U64(w, c + 16) || U64(w, c + 16) != U64(w, c + 24)) return false;
            return creds.All(cred =>
            {
                Step();
                return _r.TryU64(cred + (ulong)c, out ulong inh) && _r.TryU64(cred + (ulong)c + 8, out ulong prm) && _r.TryU64(cred + (ulong)c + 16, out ulong eff)
                    && _r.TryU64(cred + (ulong)c + 32, out ulong amb) && (eff & ~prm) == 0 && (amb & ~(prm & inh)) == 0;
            });
        }).ToList();
        if (_report.Add("cred", "cap_inheritable", candidates,
                "after securebits (or at the next 8): init_cred's empty inheritable set then three equal full sets; checked: every process's effective set inside its permitted one, ambient inside permitted and inheritable") is { } inh)
            for (int i = 1; i < caps.Length; i++)
                _report.AddStructural("cred", caps[i], inh + 8 * i, "kernel_cap_t sets of 8 bytes: inheritable, permitted, effective, bset, ambient");
        else foreach (var n in caps[1..]) _report.AddUnknown("cred", n, "needs cred.cap_inheritable");
    }
}
