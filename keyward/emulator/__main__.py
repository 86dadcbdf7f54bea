"""`python -m keyward.emulator`: serve the emulator until interrupted."""

from keyward.emulator.standalone import main

main()
