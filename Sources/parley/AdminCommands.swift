import Broker
import Chat
import Foundation
import Notify
import Store

// `parley user ...` and `parley room ...` (SPEC section 7): changes made in the
// data directory's database, whether or not the broker runs. Exit 0 on success;
// a refused command exits 1 with one line saying why.

/// `--data DIR`, `--config FILE`, the other options and the positional words.
struct AdminArguments {
    var data: String?
    var config: String?
    var options: [String: String] = [:]
    var words: [String] = []

    static func parse(_ args: [String], valued: Set<String>) throws -> AdminArguments {
        var a = AdminArguments()
        var i = 0
        while i < args.count {
            let arg = args[i]
            if arg == "--data" || arg == "--config" || valued.contains(arg) {
                guard i + 1 < args.count else { throw UsageError("\(arg) needs a value") }
                switch arg {
                case "--data": a.data = args[i + 1]
                case "--config": a.config = args[i + 1]
                default: a.options[arg] = args[i + 1]
                }
                i += 2
            } else if arg.hasPrefix("--") {
                throw UsageError("unknown option '\(arg)'")
            } else {
                a.words.append(arg)
                i += 1
            }
        }
        return a
    }

    /// The data directory: --data, else the config file's data_dir, else ./data.
    func dataDirectory() throws -> String {
        if let data { return data }
        if let config {
            var c = ServerConfig()
            try c.apply(try ConfigFile.load(config), pluginKeys: pluginSettingKeys)
            return c.dataDirectory
        }
        return ServerConfig().dataDirectory
    }
}

/// A plugin's tables in a data directory: through the store when no broker runs
/// (creating and migrating them if needed), or straight through SQLite next to a
/// running broker (which must have the plugin on).
final class PluginDatabase {
    private var store: Store?
    let db: SQLiteDatabase

    init(directory: String, plugin: String, migrations: [String]) throws {
        do {
            let store = try Store(directory: directory, durability: .full)
            try store.migratePlugin(plugin, migrations)
            self.store = store
            db = try store.withDatabase { $0 }
        } catch let error as StoreError where error.code == StoreError.heldByAnotherParley {
            db = try SQLiteDatabase(path: directory + "/parley.db")
            guard (try? db.scalarInt("SELECT version FROM plugin_schema WHERE name = '\(plugin)'")) != nil else {
                throw UsageError("the broker running on \(directory) does not have the \(plugin) plugin on (plugins = ...)")
            }
        }
    }

    static func chat(_ directory: String) throws -> PluginDatabase {
        try PluginDatabase(directory: directory, plugin: ChatSchema.name, migrations: ChatSchema.migrations)
    }
}

func readPassword(_ a: AdminArguments) throws -> String {
    if let file = a.options["--password-file"] {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw UsageError("cannot read the password file \(file)")
        }
        return String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
    }
    guard let line = readLine(strippingNewline: true) else { throw UsageError("no password on standard input") }
    return line
}

func runAdmin(_ name: String, _ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return 0
    } catch {
        printError("parley \(name): \(error)")
        return 1
    }
}

func runUserCommand(_ args: [String]) -> Int32 {
    runAdmin("user") {
        let a = try AdminArguments.parse(args, valued: ["--email", "--password-file", "--lifetime"])
        guard let verb = a.words.first else { throw UsageError("user add|passwd|del|list|token") }
        let admin = ChatAdmin(try PluginDatabase.chat(try a.dataDirectory()).db)
        let name = a.words.count > 1 ? a.words[1] : nil
        func needName() throws -> String {
            guard let name, a.words.count == 2 else { throw UsageError("user \(verb) takes one user name") }
            return name
        }
        switch verb {
        case "add":
            let user = try needName()
            try admin.addUser(user, password: try readPassword(a), email: a.options["--email"])
            print("user \(user) added")
        case "passwd":
            let user = try needName()
            try admin.setPassword(user, password: try readPassword(a))
            print("password of \(user) changed; its tokens are revoked")
        case "del":
            let user = try needName()
            try admin.deleteUser(user)
            print("user \(user) deleted")
        case "list":
            for u in try admin.users() { print(u.email.map { "\(u.name)\t\($0)" } ?? u.name) }
        case "token":
            let user = try needName()
            var lifetime: Int64 = 30 * 24 * 3600
            if let text = a.options["--lifetime"] {
                guard let s = ConfigValue.seconds(text), s > 0, s != UInt32.max else {
                    throw UsageError("--lifetime must be a duration such as 12h or 30d")
                }
                lifetime = Int64(s)
            }
            print(try admin.issueToken(user, lifetime: lifetime))
        default:
            throw UsageError("unknown user command '\(verb)' (add, passwd, del, list, token)")
        }
    }
}

func runRoomCommand(_ args: [String]) -> Int32 {
    runAdmin("room") {
        let a = try AdminArguments.parse(args, valued: ["--owner", "--title"])
        guard let verb = a.words.first else { throw UsageError("room create|list|members|add|remove|delete") }
        let admin = ChatAdmin(try PluginDatabase.chat(try a.dataDirectory()).db)
        func words(_ n: Int, _ what: String) throws -> [String] {
            guard a.words.count == n + 1 else { throw UsageError("room \(verb) takes \(what)") }
            return Array(a.words.dropFirst())
        }
        switch verb {
        case "create":
            let room = try words(1, "a room name")[0]
            guard let owner = a.options["--owner"] else { throw UsageError("room create needs --owner USER") }
            try admin.createRoom(room, owner: owner, title: a.options["--title"])
            print("room \(room) created, owned by \(owner)")
        case "list":
            for r in try admin.rooms() { print("\(r.name)\t\(r.owner)\t\(r.title ?? "")") }
        case "members":
            for m in try admin.members(try words(1, "a room name")[0]) { print(m) }
        case "add":
            let w = try words(2, "a room and a user")
            try admin.addMember(w[0], w[1])
            print("\(w[1]) added to \(w[0])")
        case "remove":
            let w = try words(2, "a room and a user")
            try admin.removeMember(w[0], w[1])
            print("\(w[1]) removed from \(w[0])")
        case "delete":
            let room = try words(1, "a room name")[0]
            try admin.deleteRoom(room)
            print("room \(room) deleted")
        default:
            throw UsageError("unknown room command '\(verb)' (create, list, members, add, remove, delete)")
        }
    }
}

func runOutboxCommand(_ args: [String]) -> Int32 {
    runAdmin("outbox") {
        let a = try AdminArguments.parse(args, valued: [])
        guard let verb = a.words.first else { throw UsageError("outbox list|retry ID|drop ID") }
        let admin = OutboxAdmin(try PluginDatabase(directory: try a.dataDirectory(), plugin: NotifySchema.name,
                                                   migrations: NotifySchema.migrations).db)
        func id() throws -> Int64 {
            guard a.words.count == 2, let n = Int64(a.words[1]) else { throw UsageError("outbox \(verb) takes a notification id") }
            return n
        }
        switch verb {
        case "list":
            for r in try admin.list() {
                print("\(r.id)\t\(r.state)\t\(r.user)\t\(r.channel)\t\(r.destination)\t\(r.attempts)\t\(r.lastError ?? "")")
            }
        case "retry":
            let n = try id()
            try admin.retry(n, now: Int64(Date().timeIntervalSince1970 * 1000))
            print("notification \(n) will be tried again")
        case "drop":
            let n = try id()
            try admin.drop(n)
            print("notification \(n) dropped")
        default:
            throw UsageError("unknown outbox command '\(verb)' (list, retry, drop)")
        }
    }
}
