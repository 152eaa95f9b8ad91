"""Workers: claim due notifications, deliver them through providers, record outcomes."""
