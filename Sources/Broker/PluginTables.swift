import Store

/// `PluginStorage` on the broker's database.
final class PluginTables: PluginStorage, @unchecked Sendable {
    let store: Store
    init(_ store: Store) { self.store = store }

    func migrate(_ plugin: String, _ migrations: [String]) throws { try store.migratePlugin(plugin, migrations) }

    func load<T>(_ body: (SQLiteDatabase) throws -> T) throws -> T { try store.withDatabase(body) }

    func write(_ write: PluginWrite, completion: (@Sendable (Bool) -> Void)?) {
        store.submit([.plugin(write)], executor: nil, failable: false, completion: completion)
    }

    func read(_ work: @escaping @Sendable (SQLiteDatabase) -> Void) { store.read(work) }
}
