// The parley command line. Subcommands live in their own files; this file only
// dispatches, and keeps no shared state (top-level code here is main-actor bound).
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
exit(runCommandLine(arguments))
