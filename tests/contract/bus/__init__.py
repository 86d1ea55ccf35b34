"""The bus contract: LocalBus and PubSubBus (emulator) behave alike."""
