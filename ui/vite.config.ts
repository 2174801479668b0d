import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// Tauri loads the dev server at a fixed port (tauri.conf.json devUrl) and the built files from
// ui/dist. Everything is bundled locally: the CSP forbids any remote script, style or font.
export default defineConfig({
  plugins: [react()],
  clearScreen: false,
  server: {
    port: 1420,
    strictPort: true,
    host: "localhost",
    watch: { ignored: ["**/src-tauri/**"] },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
  },
  test: {
    environment: "jsdom",
    globals: true,
    include: ["src/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
