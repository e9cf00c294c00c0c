import Foundation

/// The version printed by `parley version` and reported in `$SYS/broker/version`.
let parleyVersion = "0.1.0"

let usage = """
    usage: parley <command> [options]

    commands:
      version                 print the version
      bench codec [--seconds S] [--only TEXT] [--json]
                              measure the MQTT codec (decode and encode rates)
      help                    show this text

    """

/// Runs one command and returns the process exit status.
func runCommandLine(_ arguments: [String]) -> Int32 {
    guard let command = arguments.first else {
        FileHandle.standardError.write(Data(usage.utf8))
        return 2
    }
    let rest = Array(arguments.dropFirst())
    switch command {
    case "version", "--version", "-V":
        print("parley \(parleyVersion)")
        return 0
    case "help", "--help", "-h":
        print(usage, terminator: "")
        return 0
    case "bench":
        return runBench(rest)
    default:
        FileHandle.standardError.write(Data("parley: unknown command '\(command)'\n\n\(usage)".utf8))
        return 2
    }
}
