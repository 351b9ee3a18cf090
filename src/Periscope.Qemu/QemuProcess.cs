using System.Diagnostics;

namespace Periscope.Qemu;

/// <summary>
/// One QEMU process started with a given command line, with its QMP connection. Dispose asks QEMU to quit, kills only
/// this process if it does not, and closes the connection; files are the caller's.
/// </summary>
public sealed class QemuProcess : IDisposable
{
    private readonly Process _process;
    private readonly string _qmpSocket;
    private QmpClient? _qmp;

    private QemuProcess(Process process, string qmpSocket, IReadOnlyList<string> commandLine)
    {
        _process = process;
        _qmpSocket = qmpSocket;
        CommandLine = commandLine;
    }

    /// <summary>The binary and every argument, exactly as started.</summary>
    public IReadOnlyList<string> CommandLine { get; }
    public int ProcessId => _process.Id;
    public bool HasExited => _process.HasExited;

    /// <summary>The QMP connection, opened on first use (QEMU creates the socket shortly after start).</summary>
    public QmpClient Qmp => _qmp ??= ConnectQmp();

    public static QemuProcess Start(string binary, IReadOnlyList<string> arguments, string qmpSocket, string workingDirectory)
    {
        var psi = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        Process process;
        try { process = Process.Start(psi) ?? throw new IOException($"{binary} did not start"); }
        catch (System.ComponentModel.Win32Exception e) { throw new IOException($"cannot run {binary} (install qemu-system-x86): {e.Message}", e); }
        process.StandardInput.Close();
        // Drain stdout/stderr so QEMU never blocks on a full pipe; stderr is kept for error messages.
        var stderr = new System.Text.StringBuilder();
        process.ErrorDataReceived += (_, e) => { if (e.Data is { } line) lock (stderr) if (stderr.Length < 8192) stderr.AppendLine(line); };
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        var qemu = new QemuProcess(process, qmpSocket, [binary, .. arguments]) { _stderr = stderr };
        return qemu;
    }

    private System.Text.StringBuilder _stderr = new();

    /// <summary>What QEMU printed on stderr so far (capped), for error messages.</summary>
    public string StandardError { get { lock (_stderr) return _stderr.ToString().Trim(); } }

    /// <summary>`qemu-system-x86_64 --version`, first line.</summary>
    public static string Version(string binary)
    {
        var psi = new ProcessStartInfo(binary, "--version") { RedirectStandardOutput = true, UseShellExecute = false };
        try
        {
            using var p = Process.Start(psi) ?? throw new IOException($"{binary} did not start");
            string text = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return text.Split('\n')[0].Trim();
        }
        catch (System.ComponentModel.Win32Exception e) { throw new IOException($"cannot run {binary}: {e.Message}", e); }
    }

    private QmpClient ConnectQmp()
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (_process.HasExited) throw new IOException($"QEMU exited with code {_process.ExitCode}: {StandardError}");
            try { return QmpClient.Connect(_qmpSocket); }
            catch (IOException) when (deadline.Elapsed < TimeSpan.FromSeconds(30)) { Thread.Sleep(100); }
        }
    }

    /// <summary>Waits for QEMU to exit by itself (the guest powered off, or after quit).</summary>
    public bool WaitForExit(TimeSpan timeout) => _process.WaitForExit(timeout);

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                try { _qmp?.Quit(); } catch (Exception e) when (e is IOException or TimeoutException or InvalidOperationException) { }
                if (!_process.WaitForExit(5000)) _process.Kill();
                _process.WaitForExit(5000);
            }
        }
        finally
        {
            _qmp?.Dispose();
            _process.Dispose();
        }
    }
}
