using Periscope.Linux.Model;
using Periscope.Memory;

namespace Periscope.UnitTests.Linux;

/// <summary>KernelOffsets.FromBtf on synthetic BTF: every layout and enum value is read, every hostile size is refused.</summary>
public class KernelOffsetsTests
{
    [Fact]
    public void Layouts_and_enum_values_come_from_BTF_not_from_constants()
    {
        var o = new SyntheticKernelBtf
        {
            ListHeadPrev = 16, SpecialMappingNameOffset = 8, ModTextValue = 1, ModRodataValue = 3,
            ModuleStates = (5, 6, 7, 8),
        }.Offsets();
        Assert.Equal(16, o.ListHeadPrev);
        Assert.Equal(8, o.SpecialMappingName);
        Assert.Equal(1, o.Module.MemText);
        Assert.Equal(3, o.Module.MemRodata);
        Assert.Equal(7, o.Module.MemCount);
        Assert.Equal(ModuleState.Live, o.Module.StateOf(5));
        Assert.Equal(ModuleState.Unformed, o.Module.StateOf(8));
        Assert.Equal(ModuleState.Unknown, o.Module.StateOf(0));
        Assert.Equal(SyntheticKernelBtf.TaskPid, o.Task.Pid);
        Assert.Equal(16, o.Task.CommSize);
    }

    [Fact]
    public void Pid_inside_nested_anonymous_members_past_2_GiB_is_a_model_error_not_an_overflow()
    {
        // Five nested anonymous structs at +0x1ffffffe bytes each put task_struct.pid at ~2.5 GiB (issue 6 #2).
        var e = Assert.Throws<KernelModelException>(() => new SyntheticKernelBtf { PidNestingDepth = 5 }.Offsets());
        Assert.Contains("task_struct", e.Message);
        Assert.Contains("'pid'", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Comm_array_of_2_GiB_is_refused_before_any_read_allocates_it()
    {
        var e = Assert.Throws<KernelModelException>(() => new SyntheticKernelBtf { CommLength = 0x7fffffc0 }.Offsets());
        Assert.Contains("'comm'", e.Message);
        Assert.Contains("0x7fffffc0", e.Message);
        Assert.Contains("4096", e.Message); // MaxStringLength, the cap it exceeds
    }

    [Fact]
    public void Module_mem_with_2_pow_31_entries_is_refused()
    {
        var e = Assert.Throws<KernelModelException>(() => new SyntheticKernelBtf { ModuleMemCount = int.MaxValue }.Offsets());
        Assert.Contains("'mem'", e.Message);
    }

    [Fact]
    public void Module_mem_count_must_match_MOD_MEM_NUM_TYPES()
    {
        var e = Assert.Throws<KernelModelException>(() => new SyntheticKernelBtf { ModuleMemCount = 8, ModMemNumTypes = 7 }.Offsets());
        Assert.Contains("1..7", e.Message);
        Assert.Throws<KernelModelException>(() => new SyntheticKernelBtf { ModMemNumTypes = int.MaxValue }.Offsets());
    }

    [Fact]
    public void MOD_TEXT_outside_mem_is_refused()
    {
        var e = Assert.Throws<KernelModelException>(() => new SyntheticKernelBtf { ModTextValue = 9 }.Offsets());
        Assert.Contains("MOD_TEXT = 9", e.Message);
    }
}

public class IntrospectionLimitsTests
{
    [Fact]
    public void Defaults_are_valid() => IntrospectionLimits.Default.Validate();

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(int.MaxValue)]
    public void Zero_negative_and_absurd_values_are_rejected_with_name_and_number(int value)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => (IntrospectionLimits.Default with { MaxThreadsTotal = value }).Validate());
        Assert.Contains("MaxThreadsTotal", e.Message);
        Assert.Contains(value.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message);
    }

    [Fact]
    public void Byte_budgets_above_a_terabyte_are_rejected()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => (IntrospectionLimits.Default with { MaxModelBytesRead = 1L << 50 }).Validate());
        Assert.Contains("MaxModelBytesRead", e.Message);
    }

    [Fact]
    public void A_budget_is_spent_once_and_stays_exhausted()
    {
        var budget = new WorkBudget(IntrospectionLimits.Default with { MaxVmasTotal = 3 });
        Assert.True(budget.TryConsume(WorkKind.Vmas, 2));
        Assert.True(budget.TryConsume(WorkKind.Vmas));
        Assert.False(budget.AnyExhausted);
        Assert.False(budget.TryConsume(WorkKind.Vmas));
        Assert.False(budget.TryConsume(WorkKind.Vmas, -1));
        Assert.True(budget.IsExhausted(WorkKind.Vmas));
        Assert.Equal([WorkKind.Vmas], budget.Exhausted);
        Assert.Equal(3, budget.Used(WorkKind.Vmas));
        Assert.Contains("MaxVmasTotal = 3", budget.Describe(WorkKind.Vmas));
        Assert.True(budget.TryConsume(WorkKind.Threads)); // other families are untouched
    }
}
