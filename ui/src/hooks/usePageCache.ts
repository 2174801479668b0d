import { useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { onLockCleanup } from "../lib/session";
import { PageCache, type PageCacheOptions, type PageFetcher } from "../lib/pageCache";

/**
 * A {@link PageCache} bound to a component: it is reset whenever `key` (the serialised query)
 * changes, re-renders when pages arrive, and is emptied on lock.
 */
export function usePageCache<T>(fetcher: PageFetcher<T>, key: string, options?: PageCacheOptions) {
  const fetcherRef = useRef(fetcher);
  fetcherRef.current = fetcher;
  const cache = useMemo(
    () => new PageCache<T>((offset, limit) => fetcherRef.current(offset, limit), options),
    [],
  );
  const firstKey = useRef(true);
  useEffect(() => {
    if (firstKey.current) {
      firstKey.current = false;
      return;
    }
    cache.reset();
  }, [key, cache]);
  useEffect(() => onLockCleanup(() => cache.reset()), [cache]);
  useEffect(() => () => cache.reset(), [cache]);
  const version = useSyncExternalStore(
    (cb) => cache.subscribe(cb),
    () => cache.version,
  );
  return { cache, version };
}

/** Debounces a fast-changing value (the filter text) so a query is not sent per keystroke. */
export function useDebounced<T>(value: T, ms: number): T {
  const [debounced, setDebounced] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setDebounced(value), ms);
    return () => clearTimeout(t);
  }, [value, ms, setDebounced]);
  return debounced;
}

