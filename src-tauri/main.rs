// Release builds on Windows should not open a console next to the window.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    labvault_app::run();
}
