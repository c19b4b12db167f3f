//! Lists audio devices and their default formats: `cargo run -p reelthyme-audio --example devices`.

#![forbid(unsafe_code)]

fn main() {
    use reelthyme_audio::Direction;
    for (direction, label) in [(Direction::Input, "input"), (Direction::Output, "output")] {
        match reelthyme_audio::list_devices(direction) {
            Ok(names) => {
                for name in names {
                    println!("{label}: {name}");
                }
            }
            Err(error) => eprintln!("{label}: {error}"),
        }
    }
    match reelthyme_audio::Player::start(None) {
        Ok(player) => println!("default output: {:?}", player.format()),
        Err(error) => eprintln!("default output: {error}"),
    }
    match reelthyme_audio::Capture::start(None, 40, |_| {}) {
        Ok(capture) => println!("default input: {:?}", capture.format()),
        Err(error) => eprintln!("default input: {error}"),
    }
}
