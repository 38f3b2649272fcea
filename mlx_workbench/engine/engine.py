"""The engine's public face: everything outside `engine/` uses only this class.

CONTRACT (implemented by the engine; relied on by api/ and app.py):

    engine = Engine(EngineConfig(...))
    engine.start()                      # starts the device thread; preloads
    engine.stop(timeout=10)             # in-flight requests get Failed(EngineStopped);
                                        # models released on the device thread
    engine.status() -> EngineStatus     # snapshot, never blocks on the device thread

    # generation: events in order Started, (Progress*), (Delta | Finished)*, Done
    #             or, at any point, a final Failed
    async for event in engine.agenerate(request): ...   # from an asyncio loop
    for event in engine.generate(request): ...          # from any other thread
    engine.cancel(request.id)           # request ends with Finished(reason="cancelled")
                                        # for each open choice, then Done; breaking out of
                                        # agenerate()/generate() cancels too

    # Errors known at submit time raise at once from agenerate()/generate(), before
    # any event: EngineNotReady, QueueFull, ModelNotFound, InvalidRequest.
    # Errors found on the device thread (ContextLengthExceeded, LoadFailed, ...)
    # arrive as Failed before Started.

    # pool admin; each returns a concurrent.futures.Future of the EntryStatus
    engine.load(model, adapter=None, pin=None)   # registers `model` as a path/repo id if
                                                 # it is not a configured name
    engine.unload(model, adapter=None)           # adapter=None unloads the base and its adapters
    engine.pin(model, adapter=None, pinned=True)
    engine.model_ids() -> list[str]     # configured and loaded ids, "name" and "name:adapter"
"""
