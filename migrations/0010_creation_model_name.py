from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0009_masked')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Creation',
            name='model_name',
            field=fields.CharField(default='', max_length=200),
        ),
    ]
