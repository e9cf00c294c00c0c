import Foundation

import Broker

/// The version printed by `parley version` and reported in `$SYS/broker/version`.
let parleyVersion = BrokerInfo.version

let usage = """
    usage: parley <command> [options]

    commands:
      serve [--config FILE] [--mqtt HOST:PORT]... [--mqtts HOST:PORT]...
            [--http HOST:PORT]... [--https HOST:PORT]...
            [--cert FILE] [--key FILE] [--data DIR] [--loops N] [--plugins LIST]
                              run the broker (built-in defaults without a file:
                              MQTT on 127.0.0.1:1883, HTTP on 127.0.0.1:8080, the
                              chat and gateway plugins on; --plugins "" runs plain
                              MQTT); options win over the file
      check-config [--config FILE] [same options as serve]
                              read the configuration, report the first error
      user add NAME [--email ADDR] [--password-file FILE] | passwd NAME [--password-file FILE]
           | del NAME | list | token NAME [--lifetime DURATION]
                              manage chat users (the password is the first line of
                              standard input unless --password-file is given)
      room create ROOM --owner USER [--title TEXT] | list | members ROOM
           | add ROOM USER | remove ROOM USER | delete ROOM
                              manage chat rooms
      outbox list | retry ID | drop ID
                              notifications not yet sent: list them, try a dead
                              or failing one again now, or drop one
                              (user, room and outbox take --data DIR or --config
                              FILE, and work whether or not the broker runs: a
                              running one applies the change within a second)
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
    case "serve":
        // First thing, before any thread exists: a SIGTERM from now on waits for
        // the signal thread instead of killing the process.
        SignalHandling.blockSignals()
        return runServe(rest)
    case "check-config":
        return runCheckConfig(rest)
    case "bench":
        return runBench(rest)
    case "user":
        return runUserCommand(rest)
    case "room":
        return runRoomCommand(rest)
    case "outbox":
        return runOutboxCommand(rest)
    default:
        FileHandle.standardError.write(Data("parley: unknown command '\(command)'\n\n\(usage)".utf8))
        return 2
    }
}
